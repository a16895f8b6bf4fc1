"""Tiny random-weight models in the exact diffusers folder layout, built offline.

Used by the tests and for offline trials: ``t2v models make-tiny DIR``. The folder
looks like the hub repo (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
scheduler/), optionally with ``*.fp16.safetensors`` variant files beside the fp32
ones, and its tokenizer's vocab.json / merges.txt are generated here, not downloaded.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

FAMILIES = ("modelscope",)

# Words that become single tokens; everything else falls back to characters.
_WORDS = """a an the of on in at to and with by from for over under into is are
panda surfing big ocean wave sunset cat dog horse bird fish car city street forest tree trees
river lake mountain mountains snow rain fire water sky cloud clouds sun moon star stars night day
red green blue yellow white black purple orange pink brown gray golden silver
circle square triangle moving left right up down running walking flying swimming dancing
man woman child people astronaut robot dragon spaceman beach desert field flower flowers garden
slow fast motion camera zoom pan close shot wide cinematic beautiful detailed high quality
blurry low distorted artifacts flicker jitter video photo painting style""".split()

_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-to-unicode table (the 256 printable stand-ins for bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges (lowest rank first) to a symbol list, as the tokenizer will."""
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:])) if (a, b) in ranks]
        if not pairs:
            break
        _, i = min(pairs)
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]
    return symbols


def build_tokenizer_files(directory: Path) -> int:
    """Write a CLIP BPE vocab.json + merges.txt (words in ``_WORDS`` are single tokens). Returns vocab size."""
    chars = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for tok in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(tok, len(vocab))
    ranks: dict[tuple[str, str], int] = {}
    for word in _WORDS:
        pieces = _bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(pieces) > 1:  # join what the earlier merges left, left to right
            ranks.setdefault((pieces[0], pieces[1]), len(ranks))
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            vocab.setdefault(pieces[0], len(vocab))
    merges = [f"{a} {b}" for (a, b), _ in sorted(ranks.items(), key=lambda kv: kv[1])]
    for tok in _SPECIAL:
        vocab.setdefault(tok, len(vocab))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return len(vocab)


def make_tokenizer(directory: Path):
    """Build the offline CLIP tokenizer and save it in the transformers layout under ``directory``."""
    from transformers import CLIPTokenizer

    build_tokenizer_files(directory)
    tok = CLIPTokenizer(vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"), model_max_length=77)
    tok.save_pretrained(directory)
    return tok


def make_tiny(directory: str | Path, *, family: str = "modelscope", seed: int = 0, fp16_variant: bool = True) -> Path:
    """Build a tiny random-weight text-to-video model at ``directory`` and return its path."""
    if family not in FAMILIES:
        from t2v.errors import InvalidRequest

        raise InvalidRequest(f"unknown model family {family!r}; choose one of: {', '.join(FAMILIES)}", field="family")
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    out = Path(directory).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = make_tokenizer(out / "tokenizer")
    unet = UNet3DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    )
    for name, model in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(model).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        model.save_pretrained(out / name, safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    import diffusers

    index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    # t2v's own defaults for this folder (the registry reads them for local models).
    defaults = {"width": 64, "height": 64, "num_frames": 8, "fps": 8, "guidance_scale": 9.0,
                "num_inference_steps": 4, "scheduler": "dpm++"}
    (out / "t2v.json").write_text(json.dumps({"family": family, "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny %s model at %s", family, out)
    return out
