"""Tiny random-weight AnyFlow models in the ``nvidia/AnyFlow-Wan2.1-T2V-*-Diffusers`` layout, built offline.

``t2v models make-tiny --family anyflow DIR``: ``model_index.json`` (``AnyFlowPipeline``), ``transformer/``
(``AnyFlowTransformer3DModel``: Wan 2.1's blocks with a second, target timestep), ``vae/`` (``AutoencoderKLWan``),
``text_encoder/`` (a small ``UMT5EncoderModel``), ``tokenizer/`` (``ByT5Tokenizer``) and ``scheduler/``
(``FlowMapEulerDiscreteScheduler``, shift 5): Wan's tiny parts (:mod:`t2v.models.tiny.wan`) with AnyFlow's
transformer and scheduler. A few hundred KB.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from t2v.models.tiny.wan import HEAD_DIM, HEADS, TEXT_DIM, WAN21, text_encoder, vae

logger = logging.getLogger(__name__)

INDEX = {"scheduler": ["diffusers", "FlowMapEulerDiscreteScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
         "tokenizer": ["transformers", "ByT5Tokenizer"], "transformer": ["diffusers", "AnyFlowTransformer3DModel"],
         "vae": ["diffusers", "AutoencoderKLWan"]}


def make_anyflow(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """AnyFlow on Wan 2.1, text-to-video."""
    import diffusers
    import torch
    from diffusers import AnyFlowTransformer3DModel, FlowMapEulerDiscreteScheduler
    from transformers import ByT5Tokenizer

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer(model_max_length=512)
    tokenizer.save_pretrained(out / "tokenizer")
    modules = {
        "transformer": AnyFlowTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=16,
            out_channels=16, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            rope_max_seq_len=32),
        "vae": vae(WAN21), "text_encoder": text_encoder(tokenizer)}
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    FlowMapEulerDiscreteScheduler(shift=5.0).save_pretrained(out / "scheduler")
    index = {"_class_name": "AnyFlowPipeline", "_diffusers_version": diffusers.__version__, **INDEX}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    defaults = {"width": 64, "height": 32, "num_frames": 9, "fps": 16, "guidance_scale": 1.0, "num_inference_steps": 4,
                "scheduler": "model", "negative_prompt": ""}
    (out / "t2v.json").write_text(json.dumps({"family": "anyflow", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny AnyFlowPipeline model at %s", out)
    return out
