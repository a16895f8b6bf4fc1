"""Tiny random-weight Wan models in the exact ``Wan-AI/*-Diffusers`` folder layout, built offline.

``t2v models make-tiny --family wan|wan22-ti2v|wan22-a14b|wan-i2v|wan-flf2v|wan-vace DIR``. Each folder has what the hub repo
has: ``model_index.json`` (with ``boundary_ratio`` / ``expand_timesteps`` where the Wan 2.2 repos have them),
``transformer/`` (and ``transformer_2/`` for A14B), ``vae/`` (``AutoencoderKLWan``; the Wan 2.2 layout with
48 latent channels and a 16x spatial scale for TI2V-5B), ``text_encoder/`` (a small ``UMT5EncoderModel``),
``tokenizer/`` (``ByT5Tokenizer``: bytes, so no vocabulary file to download), ``scheduler/`` (UniPC with
Wan's flow-matching config), plus ``image_encoder/`` and ``image_processor/`` (CLIP) for ``wan-i2v`` and ``wan-flf2v``.
Sizes follow diffusers' own Wan pipeline tests; every folder is a few hundred KB and builds in a second.
SkyReels-V2's folders are built here too, with its pipeline and transformer classes (:mod:`t2v.models.tiny.skyreels`).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from t2v.models.tiny import make_tokenizer

logger = logging.getLogger(__name__)

TEXT_DIM = 32  # the tiny UMT5's hidden size = the transformer's text_dim
HEADS, HEAD_DIM = 2, 12  # transformer inner dim 24
CLIP_DIM = 16


@dataclass(frozen=True)
class Kind:
    """One Wan variant, scaled down."""

    pipeline: str = "WanPipeline"
    in_channels: int = 16  # transformer input: latents (+ mask and image latents for 2.1 I2V)
    z_dim: int = 16
    wan22_vae: bool = False  # TI2V-5B's VAE: 48 channels, patchified, 16x spatial
    two_experts: bool = False
    image_encoder: bool = False  # 2.1 I2V's CLIP image encoder
    flf2v: bool = False  # 2.1 FLF2V: position embeddings over the first and the last frame's image tokens
    vace: bool = False  # 2.1 VACE: WanVACETransformer3DModel, control blocks at vace_layers
    flow_shift: float = 3.0
    family: str = "wan"  # t2v.json's family
    transformer_class: str = "WanTransformer3DModel"  # SkyReels-V2's transformer has the same layout and arguments
    clip_processor: bool = False  # image_processor is a CLIPProcessor (a CLIP tokenizer beside the image processor)
    index_extra: tuple[tuple[str, object], ...] = ()  # model_index.json config keys (Wan 2.2 repos)
    width: int = 64  # t2v.json defaults
    height: int = 32
    transformer_extra: tuple[tuple[str, object], ...] = ()  # more transformer config (SkyReels-V2 DF's fps embedding)
    defaults_extra: tuple[tuple[str, object], ...] = ()  # more t2v.json defaults


WAN21 = Kind()
WAN22_TI2V = Kind(in_channels=48, z_dim=48, wan22_vae=True, flow_shift=5.0,
                  index_extra=(("boundary_ratio", None), ("expand_timesteps", True)))
WAN22_A14B = Kind(two_experts=True, index_extra=(("boundary_ratio", 0.875), ("expand_timesteps", False)))
WAN_I2V = Kind(pipeline="WanImageToVideoPipeline", in_channels=16 + 4 + 16, image_encoder=True)
WAN_FLF2V = Kind(pipeline="WanImageToVideoPipeline", in_channels=16 + 4 + 16, image_encoder=True, flf2v=True)
WAN_VACE = Kind(pipeline="WanVACEPipeline", vace=True)
IMAGE_TOKENS = (32 // 8) ** 2 + 1  # the tiny CLIP's patches and its class token


def make_wan21(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.1 T2V (1.3B / 14B layout): ``WanPipeline``, one transformer."""
    return build(Path(out), WAN21, seed=seed, fp16_variant=fp16_variant)


def make_wan22_ti2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.2 TI2V-5B: ``WanPipeline`` with ``expand_timesteps``, the Wan 2.2 VAE (text- and image-to-video)."""
    return build(Path(out), WAN22_TI2V, seed=seed, fp16_variant=fp16_variant)


def make_wan22_a14b(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.2 T2V-A14B: two different experts, ``transformer`` (high noise) and ``transformer_2``, switched
    at ``boundary_ratio`` 0.875."""
    return build(Path(out), WAN22_A14B, seed=seed, fp16_variant=fp16_variant)


def make_wan_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.1 I2V (480P / 720P layout): ``WanImageToVideoPipeline`` with a CLIP image encoder."""
    return build(Path(out), WAN_I2V, seed=seed, fp16_variant=fp16_variant)


def make_wan_flf2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.1 FLF2V (first-last-frame, 720P layout): ``WanImageToVideoPipeline`` whose transformer embeds the
    two images' CLIP tokens with positions (``pos_embed_seq_len``)."""
    return build(Path(out), WAN_FLF2V, seed=seed, fp16_variant=fp16_variant)


def make_wan_vace(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.1 VACE (1.3B / 14B layout): ``WanVACEPipeline`` whose transformer adds a control stream (control
    video, mask, reference images) in its ``vace_layers``."""
    return build(Path(out), WAN_VACE, seed=seed, fp16_variant=fp16_variant)


def transformer(kind: Kind):
    import diffusers
    from diffusers import WanVACETransformer3DModel

    image = dict(image_dim=CLIP_DIM, added_kv_proj_dim=HEADS * HEAD_DIM) if kind.image_encoder else {}
    if kind.flf2v:
        image["pos_embed_seq_len"] = 2 * IMAGE_TOKENS
    cls = getattr(diffusers, kind.transformer_class)
    if kind.vace:  # the real models' 96 control channels (2 x 16 latent + 64 mask), a control block per layer here
        cls, image = WanVACETransformer3DModel, dict(vace_layers=[0, 1], vace_in_channels=96)
    return cls(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=kind.in_channels,
        out_channels=kind.z_dim, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, **image, **dict(kind.transformer_extra))


def vae(kind: Kind):
    from diffusers import AutoencoderKLWan

    if not kind.wan22_vae:  # Wan 2.1's VAE layout, with its real latents_mean / latents_std (the defaults)
        return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True])
    n = kind.z_dim  # per-channel statistics that are not the identity, so normalising is exercised
    return AutoencoderKLWan(
        base_dim=3, z_dim=n, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[round(-0.2 + 0.4 * i / (n - 1), 4) for i in range(n)],
        latents_std=[round(0.5 + i / (n - 1), 4) for i in range(n)],
        dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
        temperal_downsample=[False, True, True])


def text_encoder(tokenizer):
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0))


#: model_index.json entries of the Wan 2.1 parts a Wan-based family reuses (:func:`wan_parts`)
PARTS_INDEX = {"text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "ByT5Tokenizer"],
               "vae": ["diffusers", "AutoencoderKLWan"]}


def wan_parts(out: Path, seed: int, make_transformer) -> tuple[Path, dict]:
    """A Wan-based family's tiny folder started: ``out`` made, the seed set, the tokenizer saved; then its
    transformer (``make_transformer()``, built first) and Wan 2.1's tiny VAE and UMT5 (:data:`PARTS_INDEX`)."""
    import torch
    from transformers import ByT5Tokenizer

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer(model_max_length=512)
    tokenizer.save_pretrained(out / "tokenizer")
    return out, {"transformer": make_transformer(), "vae": vae(WAN21), "text_encoder": text_encoder(tokenizer)}


def image_encoder():
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    model = CLIPVisionModel(CLIPVisionConfig(hidden_size=CLIP_DIM, intermediate_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=32, patch_size=8, projection_dim=CLIP_DIM))
    return model, CLIPImageProcessor(crop_size=32, size=32)


def build(out: Path, kind: Kind, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Write the tiny model ``kind`` at ``out`` and return the folder."""
    import diffusers
    import torch
    from diffusers import UniPCMultistepScheduler
    from transformers import ByT5Tokenizer

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer(model_max_length=512)  # Wan's prompt length; bytes need no vocabulary file
    tokenizer.save_pretrained(out / "tokenizer")
    modules = {"transformer": transformer(kind)}
    if kind.two_experts:
        modules["transformer_2"] = transformer(kind)  # drawn after the first: a different random expert
    modules.update(vae=vae(kind), text_encoder=text_encoder(tokenizer))
    if kind.image_encoder:
        modules["image_encoder"], processor = image_encoder()
        if kind.clip_processor:
            from transformers import CLIPProcessor

            processor = CLIPProcessor(image_processor=processor, tokenizer=make_tokenizer(out / "image_processor"))
        processor.save_pretrained(out / "image_processor")
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=kind.flow_shift)
    scheduler.save_pretrained(out / "scheduler")

    index: dict[str, object] = {"_class_name": kind.pipeline, "_diffusers_version": diffusers.__version__,
                                **dict(kind.index_extra)}
    if kind.image_encoder:
        index.update(image_encoder=["transformers", "CLIPVisionModel"],
                     image_processor=["transformers", "CLIPProcessor" if kind.clip_processor else "CLIPImageProcessor"])
    index.update(scheduler=["diffusers", "UniPCMultistepScheduler"], text_encoder=["transformers", "UMT5EncoderModel"],
                 tokenizer=["transformers", "ByT5Tokenizer"], transformer=["diffusers", type(modules["transformer"]).__name__])
    if kind.index_extra:  # the Wan 2.2 repos name transformer_2 (null in TI2V-5B)
        index["transformer_2"] = ["diffusers", "WanTransformer3DModel"] if kind.two_experts else [None, None]
    index["vae"] = ["diffusers", "AutoencoderKLWan"]
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")

    defaults = {"width": kind.width, "height": kind.height, "num_frames": 9, "fps": 16, "guidance_scale": 5.0,
                "num_inference_steps": 4, "scheduler": "model", "negative_prompt": ""}
    if kind.two_experts:
        defaults["guidance_scale_2"] = 4.0
    defaults.update(dict(kind.defaults_extra))
    (out / "t2v.json").write_text(json.dumps({"family": kind.family, "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny %s model at %s", kind.pipeline, out)
    return out
