"""Tiny random-weight LTX-Video models in the exact ``Lightricks/LTX-Video*`` folder layout, built offline.

``t2v models make-tiny --family ltx|ltx-097 DIR``. Each folder has what the hub repo has: ``model_index.json``,
``transformer/`` (``LTXVideoTransformer3DModel``), ``vae/`` (``AutoencoderKLLTXVideo`` with the real 32x spatial,
8x temporal compression: patch 4 and three space-time stages), ``text_encoder/`` (a small ``T5EncoderModel``),
``tokenizer/`` (``ByT5Tokenizer``: bytes, so no vocabulary file to download) and ``scheduler/``
(``FlowMatchEulerDiscreteScheduler`` with the repo's config):

- ``ltx``: the 0.9.1 layout (``LTXPipeline``; text- and image-to-video on one folder): the timestep-conditioned
  VAE whose decoder injects noise, dynamic shifting in the scheduler.
- ``ltx-097``: the 0.9.5+ VAE (``LTXVideo095DownBlock3D`` encoder) and the 0.9.7 pipeline class
  (``LTXConditionPipeline``), no dynamic shifting, custom distilled-style timesteps and a guidance rescale
  in its t2v.json.

The VAE's latent statistics and the decoder's noise scales are set to values that are not the identity, so
normalising and the decode noise are exercised. Each folder is a few hundred KB and builds in about a second.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_DIM = 32  # the tiny T5's d_model = the transformer's caption_channels
LATENT = 8  # latent channels


@dataclass(frozen=True)
class Kind:
    pipeline: str = "LTXPipeline"
    vae_095: bool = False  # the 0.9.5+ VAE (LTXVideo095DownBlock3D encoder, no decoder noise)
    dynamic_shifting: bool = True  # 0.9.0 / 0.9.1 scheduler; 0.9.5+ have none
    defaults: tuple[tuple[str, object], ...] = ()  # t2v.json defaults beyond the common ones


LTX = Kind(defaults=(("decode_timestep", 0.05), ("decode_noise_scale", 0.025)))
LTX_097 = Kind(pipeline="LTXConditionPipeline", vae_095=True, dynamic_shifting=False,
               defaults=(("decode_timestep", 0.05), ("decode_noise_scale", 0.025),
                         ("timesteps", [1000.0, 993.0, 975.0, 725.0]), ("guidance_rescale", 0.7)))


def make_ltx(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """LTX-Video 0.9.1 layout: ``LTXPipeline`` (``LTXImageToVideoPipeline`` loads the same folder)."""
    return build(Path(out), LTX, seed=seed, fp16_variant=fp16_variant)


def make_ltx_097(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """LTX-Video 0.9.7 layout: ``LTXConditionPipeline``, the 0.9.5+ VAE, custom timesteps (distilled-style) and
    diffusers' example guidance rescale."""
    return build(Path(out), LTX_097, seed=seed, fp16_variant=fp16_variant)


def transformer():
    from diffusers import LTXVideoTransformer3DModel

    return LTXVideoTransformer3DModel(in_channels=LATENT, out_channels=LATENT, patch_size=1, patch_size_t=1,
                                      num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
                                      num_layers=2, caption_channels=TEXT_DIM)


def vae(kind: Kind):
    import torch
    from diffusers import AutoencoderKLLTXVideo

    common = dict(in_channels=3, out_channels=3, latent_channels=LATENT, decoder_block_out_channels=(8, 16, 32),
                  decoder_layers_per_block=(1, 1, 1, 1), decoder_spatio_temporal_scaling=(True, True, True),
                  upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
                  patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False)
    if kind.vae_095:
        model = AutoencoderKLLTXVideo(
            block_out_channels=(8, 8, 8, 8, 8), down_block_types=("LTXVideo095DownBlock3D",) * 4,
            layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, True),
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            decoder_inject_noise=(False, False, False, False), spatial_compression_ratio=32,
            temporal_compression_ratio=8, **common)
    else:
        model = AutoencoderKLLTXVideo(
            block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(True, True, True, False),
            **common)
    with torch.no_grad():  # statistics and noise scales that are not the identity / zero
        model.latents_mean.copy_(torch.linspace(-0.2, 0.2, LATENT))
        model.latents_std.copy_(torch.linspace(0.5, 1.5, LATENT))
        for name, p in model.named_parameters():
            if "per_channel_scale" in name:
                p.copy_(torch.rand_like(p) * 0.1)
    return model


def text_encoder(tokenizer):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0))


def scheduler(kind: Kind):
    from diffusers import FlowMatchEulerDiscreteScheduler

    if kind.dynamic_shifting:  # Lightricks/LTX-Video(-0.9.1)/scheduler/scheduler_config.json
        return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                               base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)
    return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False)  # diffusers' 0.9.5 / 0.9.7 conversion


def build(out: Path, kind: Kind, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Write the tiny model ``kind`` at ``out`` and return the folder."""
    import diffusers
    import torch
    from transformers import ByT5Tokenizer

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer(model_max_length=128)  # the hub tokenizer's model_max_length
    tokenizer.save_pretrained(out / "tokenizer")
    modules = {"transformer": transformer(), "vae": vae(kind), "text_encoder": text_encoder(tokenizer)}
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    scheduler(kind).save_pretrained(out / "scheduler")
    index = {"_class_name": kind.pipeline, "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "ByT5Tokenizer"],
             "transformer": ["diffusers", "LTXVideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLLTXVideo"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    defaults = {"width": 96, "height": 64, "num_frames": 9, "fps": 25, "guidance_scale": 3.0,
                "num_inference_steps": 4, "scheduler": "model", "negative_prompt": "", **dict(kind.defaults)}
    (out / "t2v.json").write_text(json.dumps({"family": "ltx", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny %s model at %s", kind.pipeline, out)
    return out
