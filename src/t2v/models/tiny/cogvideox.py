"""Tiny random-weight CogVideoX models in the exact ``zai-org/CogVideoX*`` folder layout, built offline.

``t2v models make-tiny --family cogvideox|cogvideox-i2v|cogvideox15|cogvideox15-i2v DIR``. Each folder has what
the hub repo has: ``model_index.json`` (``CogVideoXPipeline`` / ``CogVideoXImageToVideoPipeline``, the
``CogVideoXDDIMScheduler`` every official repo names), ``transformer/`` (``CogVideoXTransformer3DModel``),
``vae/`` (``AutoencoderKLCogVideoX``), ``text_encoder/`` (a small ``T5EncoderModel``), ``tokenizer/``
(``ByT5Tokenizer``: bytes, so no vocabulary file to download) and ``scheduler/`` (CogVideoX-2B's config).

The variants keep the code paths of the real ones:

- ``cogvideox``: 2B (sinusoidal 3D position embeddings, no rotary ones, VAE scaling factor 0.7);
- ``cogvideox-i2v``: 5B-I2V (rotary embeddings *and* learned position embeddings, so one size only; latents and
  image latents concatenated: twice the input channels);
- ``cogvideox15``: 1.5-5B (``patch_size_t`` 2: latent frames padded to an even count; rotary embeddings sliced
  from a ``sample_height`` x ``sample_width`` table, which bounds the size);
- ``cogvideox15-i2v``: 1.5-5B-I2V (the ``ofs`` embedding, ``invert_scale_latents``).

Sizes follow diffusers' own CogVideoX tests (head dim 16 so the 3D rotary split works); every folder is a few
hundred KB and builds in about a second.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_DIM = 32  # the tiny T5's d_model = the transformer's text_embed_dim
TEXT_TOKENS = 226  # CogVideoX's max_text_seq_length, as the real models have it
LATENT_CHANNELS = 4


@dataclass(frozen=True)
class Kind:
    """One CogVideoX variant, scaled down."""

    pipeline: str = "CogVideoXPipeline"
    i2v: bool = False  # image latents concatenated to the latents: twice the input channels
    rotary: bool = False
    learned_positions: bool = False  # 5B-I2V: one size only
    patch_size_t: int | None = None  # 1.5
    ofs: bool = False  # 1.5 I2V
    scaling_factor: float = 0.7  # 2B; 1.15258426 for the 5B and 1.5 VAEs
    invert_scale_latents: bool = False  # 1.5 I2V's VAE
    sample_height: int = 4  # latent size: the default 32 x 64 pixels
    sample_width: int = 8


COGVIDEOX = Kind()
COGVIDEOX_I2V = Kind(pipeline="CogVideoXImageToVideoPipeline", i2v=True, rotary=True, learned_positions=True,
                     scaling_factor=1.15258426)
COGVIDEOX15 = Kind(rotary=True, patch_size_t=2, scaling_factor=1.15258426)
COGVIDEOX15_I2V = Kind(pipeline="CogVideoXImageToVideoPipeline", i2v=True, rotary=True, patch_size_t=2, ofs=True,
                       scaling_factor=1.15258426, invert_scale_latents=True)


def make_cogvideox(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """CogVideoX-2B layout: ``CogVideoXPipeline``, sinusoidal position embeddings."""
    return build(Path(out), COGVIDEOX, seed=seed, fp16_variant=fp16_variant)


def make_cogvideox_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """CogVideoX-5B-I2V layout: ``CogVideoXImageToVideoPipeline``, rotary and learned position embeddings."""
    return build(Path(out), COGVIDEOX_I2V, seed=seed, fp16_variant=fp16_variant)


def make_cogvideox15(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """CogVideoX1.5-5B layout: ``CogVideoXPipeline`` with ``patch_size_t`` 2."""
    return build(Path(out), COGVIDEOX15, seed=seed, fp16_variant=fp16_variant)


def make_cogvideox15_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """CogVideoX1.5-5B-I2V layout: ``CogVideoXImageToVideoPipeline`` with ``patch_size_t`` 2 and ``ofs``."""
    return build(Path(out), COGVIDEOX15_I2V, seed=seed, fp16_variant=fp16_variant)


def transformer(kind: Kind):
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=LATENT_CHANNELS * (2 if kind.i2v else 1),
        out_channels=LATENT_CHANNELS, time_embed_dim=16, ofs_embed_dim=16 if kind.ofs else None, text_embed_dim=TEXT_DIM,
        num_layers=2, sample_width=kind.sample_width, sample_height=kind.sample_height, sample_frames=9,
        patch_size=2, patch_size_t=kind.patch_size_t, patch_bias=kind.patch_size_t is None, temporal_compression_ratio=4,
        max_text_seq_length=TEXT_TOKENS, use_rotary_positional_embeddings=kind.rotary,
        use_learned_positional_embeddings=kind.learned_positions)


def vae(kind: Kind):
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(4, 4, 4, 4), latent_channels=LATENT_CHANNELS,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4, scaling_factor=kind.scaling_factor,
        invert_scale_latents=kind.invert_scale_latents)


def text_encoder(tokenizer):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0))


def scheduler():
    """CogVideoX-2B's scheduler_config.json."""
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                  num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                  set_alpha_to_one=True, snr_shift_scale=3.0, steps_offset=0, timestep_spacing="trailing")


def build(out: Path, kind: Kind, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Write the tiny model ``kind`` at ``out`` and return the folder."""
    import diffusers
    import torch
    from transformers import ByT5Tokenizer

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer(model_max_length=TEXT_TOKENS)
    tokenizer.save_pretrained(out / "tokenizer")
    modules = {"transformer": transformer(kind), "vae": vae(kind), "text_encoder": text_encoder(tokenizer)}
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    scheduler().save_pretrained(out / "scheduler")
    index = {"_class_name": kind.pipeline, "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "CogVideoXDDIMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "ByT5Tokenizer"], "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLCogVideoX"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    defaults = {"width": kind.sample_width * 8, "height": kind.sample_height * 8, "num_frames": 9,
                "fps": 16 if kind.patch_size_t else 8, "guidance_scale": 6.0, "num_inference_steps": 4,
                "scheduler": "model", "negative_prompt": ""}
    (out / "t2v.json").write_text(json.dumps({"family": "cogvideox", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny %s model at %s", kind.pipeline, out)
    return out
