"""Tiny random-weight AnimateDiff models in the hub layouts, built offline.

``t2v models make-tiny --family animatediff DIR``: a saved ``AnimateDiffPipeline``, as
``pipe.save_pretrained`` writes it: ``unet/`` a ``UNetMotionModel`` (the SD UNet with the motion modules in
it), ``motion_adapter/``, the SD 1.x ``vae/``, ``text_encoder/`` and ``tokenizer/``, and AnimateDiff's DDIM
``scheduler/``. ``--family animatediff-adapter DIR``: a motion adapter alone, as the
``guoyww/animatediff-motion-adapter-*`` repos have it (``config.json`` + ``diffusion_pytorch_model.safetensors``),
that fits the tiny SD model (``--family sd``): :func:`t2v.families.animatediff.compose` joins the two.
Each folder is a few hundred KB and builds in about a second.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from t2v.models.compose import animatediff_scheduler
from t2v.models.tiny import make_tiny_sd

logger = logging.getLogger(__name__)

DEFAULTS = {"width": 64, "height": 64, "num_frames": 8, "fps": 8, "guidance_scale": 7.5, "num_inference_steps": 4,
            "scheduler": "model", "negative_prompt": ""}


def motion_adapter():
    """A random MotionAdapter for the tiny SD UNet (channels 32, 64; one layer per block), with the v1-5-2
    layout's mid-block motion module and its 32 frame positions."""
    from diffusers import MotionAdapter

    return MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=4,
                         motion_norm_num_groups=8, motion_max_seq_length=32, use_motion_mid_block=True)


def make_tiny_motion_adapter(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """The motion adapter alone, in the layout of ``guoyww/animatediff-motion-adapter-*``."""
    import torch

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    adapter = motion_adapter()
    if fp16_variant:  # first, so the fp32 save below writes the config last
        copy.deepcopy(adapter).to(torch.float16).save_pretrained(out, safe_serialization=True, variant="fp16")
    adapter.save_pretrained(out, safe_serialization=True)
    logger.info("built tiny motion adapter at %s", out)
    return out


def make_tiny_animatediff(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """A saved ``AnimateDiffPipeline``: the tiny SD model's parts and a random motion adapter, joined by the
    pipeline itself (``UNetMotionModel.from_unet2d``) and saved with ``save_pretrained``."""
    import torch
    from diffusers import AnimateDiffPipeline, AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    out = Path(out).expanduser()
    make_tiny_sd(out, seed=seed, fp16_variant=False)  # overwritten below by the pipeline's own save
    torch.manual_seed(seed + 1)
    pipe = AnimateDiffPipeline(
        vae=AutoencoderKL.from_pretrained(out, subfolder="vae"),
        text_encoder=CLIPTextModel.from_pretrained(out, subfolder="text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(out, subfolder="tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(out, subfolder="unet"),
        motion_adapter=motion_adapter(),
        scheduler=animatediff_scheduler(out / "scheduler"),
    )
    if fp16_variant:  # first, so the fp32 save below leaves the configs saying float32
        copy.deepcopy(pipe).to(torch_dtype=torch.float16).save_pretrained(out, safe_serialization=True, variant="fp16")
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "t2v.json").write_text(json.dumps({"family": "animatediff", "defaults": DEFAULTS}, indent=2) + "\n")
    logger.info("built tiny AnimateDiff pipeline at %s", out)
    return out
