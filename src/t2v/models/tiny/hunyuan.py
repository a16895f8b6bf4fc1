"""Tiny random-weight HunyuanVideo models in the exact ``hunyuanvideo-community/*`` folder layout, built offline.

``t2v models make-tiny --family hunyuan|hunyuan-i2v|hunyuan-i2v-33ch DIR``. Each folder has what the hub repo
has: ``model_index.json``, ``transformer/`` (``HunyuanVideoTransformer3DModel``: guidance embedding; for I2V
``token_replace``, or ``latent_concat`` with 33 input channels for the first I2V release), ``vae/``
(``AutoencoderKLHunyuanVideo``, 8x spatial, 4x temporal, 16 latent channels), ``text_encoder/`` (a small
``LlamaModel``; for I2V a ``LlavaForConditionalGeneration`` whose CLIP vision tower gives the 576 image tokens
the prompt template expects), ``tokenizer/`` (a Llama BPE tokenizer generated here: the HunyuanVideo prompt
templates tokenize to exactly their ``crop_start`` tokens, 95 and 103, with ``<image>`` at position 5, as
with the real Llama 3 tokenizer), ``text_encoder_2/`` + ``tokenizer_2/`` (CLIP), ``scheduler/``
(FlowMatchEuler, shift 7) and, for I2V, ``image_processor/`` (CLIP, 336 px). A few hundred KB each.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from t2v.models.tiny import make_tokenizer

logger = logging.getLogger(__name__)

TEXT_DIM = 16  # the Llama's hidden size = the transformer's text_embed_dim
CLIP_DIM = 16  # CLIP text hidden size = pooled_projection_dim
LATENT_CHANNELS = 16  # as the real VAE
# The Llama special tokens the templates use (Llama 3's names) and a padding token.
SPECIAL = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<image>",
           "<pad>")
# Prompt words that become single tokens beside the templates' own words.
PROMPT_WORDS = """a an the of on in at to and with by from is panda surfing big wave sunset cat dog red green blue
ball car city street forest river ocean beach sky night day man woman robot walking running flying turns head
slowly camera zoom moving left right""".split()


@dataclass(frozen=True)
class Kind:
    """One HunyuanVideo variant, scaled down."""

    pipeline: str = "HunyuanVideoPipeline"
    image_condition: str | None = None  # None (text-to-video), "token_replace" or "latent_concat"

    @property
    def in_channels(self) -> int:
        return 2 * LATENT_CHANNELS + 1 if self.image_condition == "latent_concat" else LATENT_CHANNELS


T2V = Kind()
I2V = Kind(pipeline="HunyuanVideoImageToVideoPipeline", image_condition="token_replace")
I2V_33CH = Kind(pipeline="HunyuanVideoImageToVideoPipeline", image_condition="latent_concat")


def make_hunyuan(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """HunyuanVideo text-to-video (``hunyuanvideo-community/HunyuanVideo`` layout)."""
    return build(Path(out), T2V, seed=seed, fp16_variant=fp16_variant)


def make_hunyuan_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """HunyuanVideo-I2V (``hunyuanvideo-community/HunyuanVideo-I2V``): token_replace, guidance embedding."""
    return build(Path(out), I2V, seed=seed, fp16_variant=fp16_variant)


def make_hunyuan_i2v_33ch(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """The first HunyuanVideo-I2V release (``HunyuanVideo-I2V-33ch``): latent_concat, no guidance embedding."""
    return build(Path(out), I2V_33CH, seed=seed, fp16_variant=fp16_variant)


# -- the Llama tokenizer ----------------------------------------------------------------------------------


def template_words() -> list[str]:
    """The words of diffusers' HunyuanVideo prompt templates and :data:`PROMPT_WORDS`, sorted."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE as T2V_TEMPLATE
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import (
        DEFAULT_PROMPT_TEMPLATE as I2V_TEMPLATE,
    )

    text = " ".join([T2V_TEMPLATE["template"], I2V_TEMPLATE["template"], *PROMPT_WORDS])
    return sorted(set(re.findall(r"[A-Za-z]+", text)))


def merge_to_one(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair merging of ``symbols`` by ``ranks`` (lowest first), as the tokenizer applies them."""
    while len(symbols) > 1:
        pairs = [(ranks[p], i) for i, p in enumerate(zip(symbols, symbols[1:])) if p in ranks]
        if not pairs:
            break
        _, i = min(pairs)
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def make_llama_tokenizer(directory: Path):
    """A Llama BPE tokenizer (Metaspace, byte fallback: what ``LlamaTokenizerFast`` builds in transformers 5) in
    which each template / prompt word, with or without its leading space, is one token, punctuation and
    digits are single characters and ``"\\n\\n"`` is one token: Llama 3's counts for the HunyuanVideo
    templates. Saved under ``directory`` and returned."""
    from transformers import AddedToken, LlamaTokenizerFast

    vocab: dict[str, int] = {"<unk>": 0, **{f"<0x{b:02X}>": 1 + b for b in range(256)}}
    for c in ["▁", "\n", *(chr(i) for i in range(33, 127))]:
        vocab.setdefault(c, len(vocab))
    merges: list[tuple[str, str]] = []
    words = template_words()
    for word in [*words, "\n\n"]:  # letters first: a word is whole before any "▁" merge applies
        pieces = merge_to_one(list(word), {p: r for r, p in enumerate(merges)})
        while len(pieces) > 1:
            if (pieces[0], pieces[1]) not in merges:
                merges.append((pieces[0], pieces[1]))
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    for word in words:
        merges.append(("▁", word))
        vocab.setdefault("▁" + word, len(vocab))
    tok = LlamaTokenizerFast(vocab=vocab, merges=merges, unk_token="<unk>", bos_token=SPECIAL[0], eos_token=SPECIAL[1],
                             pad_token="<pad>", add_bos_token=True, model_max_length=4096, padding_side="right")
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL], special_tokens=True)
    tok.save_pretrained(directory)
    return tok


# -- modules -------------------------------------------------------------------------------------------


def llama_config(tokenizer):
    from transformers import LlamaConfig

    # Three layers: the pipelines take the hidden states of the third layer from the end (after layer one).
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=32, num_hidden_layers=3,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def text_encoder(tokenizer, kind: Kind):
    """``LlamaModel`` (text-to-video) or a Llava with a CLIP ViT-L/14-336 shaped vision tower (576 patches)."""
    from transformers import CLIPVisionConfig, LlamaModel, LlavaConfig, LlavaForConditionalGeneration

    if kind.image_condition is None:
        return LlamaModel(llama_config(tokenizer))
    vision = CLIPVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                              image_size=336, patch_size=14, projection_dim=8)
    return LlavaForConditionalGeneration(LlavaConfig(
        vision_config=vision, text_config=llama_config(tokenizer), image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id))


def clip_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=CLIP_DIM, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))


def transformer(kind: Kind):
    from diffusers import HunyuanVideoTransformer3DModel

    return HunyuanVideoTransformer3DModel(
        in_channels=kind.in_channels, out_channels=LATENT_CHANNELS, num_attention_heads=2, attention_head_dim=10,
        num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1,
        guidance_embeds=kind.image_condition != "latent_concat", text_embed_dim=TEXT_DIM, pooled_projection_dim=CLIP_DIM,
        rope_axes_dim=(2, 4, 4), image_condition_type=kind.image_condition)


def vae():
    from diffusers import AutoencoderKLHunyuanVideo

    return AutoencoderKLHunyuanVideo(latent_channels=LATENT_CHANNELS, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                     norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=8,
                                     temporal_compression_ratio=4, mid_block_add_attention=True)


def build(out: Path, kind: Kind, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Write the tiny model ``kind`` at ``out`` and return the folder."""
    import diffusers
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = make_llama_tokenizer(out / "tokenizer")
    clip_tokenizer = make_tokenizer(out / "tokenizer_2")
    modules = {"transformer": transformer(kind), "vae": vae(), "text_encoder": text_encoder(tokenizer, kind),
               "text_encoder_2": clip_text_encoder(clip_tokenizer)}
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    FlowMatchEulerDiscreteScheduler(shift=7.0).save_pretrained(out / "scheduler")

    index: dict[str, object] = {"_class_name": kind.pipeline, "_diffusers_version": diffusers.__version__}
    if kind.image_condition:
        from transformers import CLIPImageProcessor

        CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(
            out / "image_processor")
        index["image_processor"] = ["transformers", "CLIPImageProcessor"]
    index.update(
        scheduler=["diffusers", "FlowMatchEulerDiscreteScheduler"],
        text_encoder=["transformers", "LlavaForConditionalGeneration" if kind.image_condition else "LlamaModel"],
        text_encoder_2=["transformers", "CLIPTextModel"], tokenizer=["transformers", "LlamaTokenizerFast"],
        tokenizer_2=["transformers", "CLIPTokenizer"], transformer=["diffusers", "HunyuanVideoTransformer3DModel"],
        vae=["diffusers", "AutoencoderKLHunyuanVideo"])
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    defaults = {"width": 64, "height": 32, "num_frames": 9, "fps": 24, "num_inference_steps": 4, "scheduler": "model",
                "guidance_scale": 1.0 if kind.image_condition == "latent_concat" else 6.0, "guidance_scale_2": 1.0,
                "negative_prompt": ""}
    (out / "t2v.json").write_text(json.dumps({"family": "hunyuan", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny %s (%s) at %s", kind.pipeline, kind.image_condition or "text-to-video", out)
    return out
