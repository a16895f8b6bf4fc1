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
from dataclasses import dataclass
from pathlib import Path
from t2v.models.catalog import CATALOG

logger = logging.getLogger(__name__)


# Words that become single tokens; everything else falls back to characters.
_WORDS = """a an the of on in at to and with by from for over under into is are
panda surfing big ocean wave sunset cat dog horse bird fish car city street forest tree trees
river lake mountain mountains snow rain fire water sky cloud clouds sun moon star stars night day
red green blue yellow white black purple orange pink brown gray golden silver
circle square triangle moving left right up down running walking flying swimming dancing
man woman child people astronaut robot dragon spaceman beach desert field flower flowers garden
slow fast motion camera zoom pan close shot wide cinematic beautiful detailed high quality
blurry low distorted artifacts flicker jitter video photo painting style
going moves travels sliding leftwards rightwards upwards downwards""".split()

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


def make_tokenizer(directory: Path, max_length: int = 77):
    """Build the offline CLIP tokenizer and save it in the transformers layout under ``directory``."""
    from transformers import CLIPTokenizer

    build_tokenizer_files(directory)
    tok = CLIPTokenizer(vocab=str(directory / "vocab.json"), merges=str(directory / "merges.txt"), model_max_length=max_length)
    tok.save_pretrained(directory)
    return tok


@dataclass(frozen=True)
class Arch:
    """Sizes of a small UNet3D + AutoencoderKL + CLIP text model (the ModelScope layout, scaled down)."""

    unet_channels: tuple[int, ...] = (32, 64)
    unet_layers: int = 1
    cross_attention_dim: int = 32
    attention_heads: int = 8
    vae_channels: tuple[int, ...] = (16, 32, 32)
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 64
    max_tokens: int = 77
    sample_size: int = 64


TINY_ARCH = Arch()


def build_models(arch: Arch, tokenizer, *, video_unet: bool = True):
    """Fresh random-weight (unet, vae, text_encoder, scheduler) for ``arch`` (unet None without ``video_unet``)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    n = len(arch.unet_channels)
    unet = None if not video_unet else UNet3DConditionModel(
        block_out_channels=arch.unet_channels,
        layers_per_block=arch.unet_layers,
        sample_size=arch.sample_size // 2 ** (len(arch.vae_channels) - 1),
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D",) * (n - 1) + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * (n - 1),
        cross_attention_dim=arch.cross_attention_dim,
        attention_head_dim=arch.attention_heads,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(arch.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(arch.vae_channels),
        block_out_channels=arch.vae_channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=arch.sample_size,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=arch.cross_attention_dim,
            intermediate_size=arch.text_intermediate,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.text_heads,
            max_position_embeddings=arch.max_tokens,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    )
    return unet, vae, text_encoder, scheduler


def make_tiny(directory: str | Path, *, family: str = "modelscope", seed: int = 0, fp16_variant: bool = True) -> Path:
    """Build a tiny random-weight model of ``family`` (a `t2v models make-tiny --family` name) at ``directory``."""
    return CATALOG.make_tiny_model(family, Path(directory), seed=seed, fp16_variant=fp16_variant)


def _start(out: Path, seed: int):
    import torch

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return make_tokenizer(out / "tokenizer")


def make_tiny_modelscope(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """A tiny UNet3D text-to-video model in the ModelScope (TextToVideoSDPipeline) layout."""
    tokenizer = _start(out, seed)
    unet, vae, text_encoder, scheduler = build_models(TINY_ARCH, tokenizer)
    defaults = {"width": 64, "height": 64, "num_frames": 8, "fps": 8, "guidance_scale": 9.0,
                "num_inference_steps": 4, "scheduler": "dpm++"}
    save_pipeline(out, unet=unet, vae=vae, text_encoder=text_encoder, scheduler=scheduler, family="modelscope",
                  defaults=defaults, fp16_variant=fp16_variant)
    logger.info("built tiny modelscope model at %s", out)
    return out


def make_tiny_sd(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    _make_tiny_sd(out, _start(out, seed), fp16_variant)
    return out


def make_tiny_sdxl(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    _make_tiny_sd(out, _start(out, seed), fp16_variant, xl=True)
    return out


def _make_tiny_sd(out: Path, tokenizer, fp16_variant: bool, xl: bool = False) -> None:
    """A tiny Stable Diffusion (UNet2DConditionModel) in the StableDiffusionPipeline layout; with ``xl``,
    SDXL's: a second tokenizer + CLIPTextModelWithProjection, and the UNet's text_time added conditioning."""
    from diffusers import UNet2DConditionModel

    _, vae, text_encoder, scheduler = build_models(TINY_ARCH, tokenizer, video_unet=False)
    scheduler.register_to_config(steps_offset=1)  # as the SD repos have it (diffusers' SD pipelines patch 0 to 1)
    xl_kwargs = {}
    if xl:
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        tokenizer.save_pretrained(out / "tokenizer_2")
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, projection_dim=32, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
        te2.save_pretrained(out / "text_encoder_2", safe_serialization=True)
        # cross-attention sees both encoders' hidden states side by side (32 + 32); the pooled projection (32)
        # plus 6 time ids x 8 go into the added embedding.
        xl_kwargs = dict(addition_embed_type="text_time", addition_time_embed_dim=8,
                         projection_class_embeddings_input_dim=32 + 6 * 8)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_ARCH.cross_attention_dim * (2 if xl else 1),
        attention_head_dim=8,
        norm_num_groups=8,
        **xl_kwargs,
    )
    defaults = {"width": 64, "height": 64, "num_frames": 8, "fps": 8, "guidance_scale": 7.5,
                "num_inference_steps": 4, "scheduler": "dpm++", "negative_prompt": ""}
    save_pipeline(out, unet=unet, vae=vae, text_encoder=text_encoder, scheduler=scheduler, family="sdxl" if xl else "sd",
                  defaults=defaults, fp16_variant=fp16_variant,
                  pipeline="StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline")


def save_component(model, folder: Path, **kwargs) -> None:
    """``model.save_pretrained(folder, safe_serialization=True)``, without the ``_name_or_path`` its config keeps
    of where it was loaded from (a path of the machine that made it)."""
    model.save_pretrained(folder, safe_serialization=True, **kwargs)
    config = folder / "config.json"
    data = json.loads(config.read_text())
    if data.pop("_name_or_path", None) is not None:
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_folder(out: Path, modules: dict, scheduler, *, pipeline: str, index: dict, family: str, defaults: dict,
                fp16_variant: bool = True) -> Path:
    """A tiny model's folder in its hub layout: each module (with an fp16 variant beside it when asked), the
    scheduler, ``model_index.json`` (``pipeline`` and the components ``index`` names) and ``t2v.json`` (the family
    and its tiny defaults); the tokenizers are saved by the caller. Returns ``out``."""
    import diffusers
    import torch

    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            save_component(copy.deepcopy(module).to(torch.float16), out / name, variant="fp16")
        save_component(module, out / name)
    scheduler.save_pretrained(out / "scheduler")
    full = {"_class_name": pipeline, "_diffusers_version": diffusers.__version__, **index}
    (out / "model_index.json").write_text(json.dumps(full, indent=2) + "\n")
    (out / "t2v.json").write_text(json.dumps({"family": family, "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny %s model at %s", pipeline, out)
    return out


def save_pipeline(out: Path, *, unet, vae, text_encoder, scheduler, family: str, defaults: dict,
                  fp16_variant: bool = False, extra: dict | None = None, pipeline: str = "TextToVideoSDPipeline") -> None:
    """Save components + model_index.json + t2v.json in the diffusers TextToVideoSDPipeline layout.

    The tokenizer is expected in ``out/tokenizer`` already. ``extra`` goes into t2v.json beside the defaults.
    """
    import diffusers
    import torch

    for name, model in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            save_component(copy.deepcopy(model).to(torch.float16), out / name, variant="fp16")
        save_component(model, out / name)
    scheduler.save_pretrained(out / "scheduler")
    index = {
        "_class_name": pipeline,
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", type(scheduler).__name__],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", type(unet).__name__],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if pipeline == "StableDiffusionPipeline":  # no safety checker in a test model (diffusers accepts None)
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    if pipeline == "StableDiffusionXLPipeline":
        index.update(text_encoder_2=["transformers", "CLIPTextModelWithProjection"], tokenizer_2=["transformers", "CLIPTokenizer"],
                     force_zeros_for_empty_prompt=True)
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    # t2v's own defaults for this folder (the registry reads them for local models).
    meta = {"family": family, "defaults": defaults, **(extra or {})}
    (out / "t2v.json").write_text(json.dumps(meta, indent=2) + "\n")
