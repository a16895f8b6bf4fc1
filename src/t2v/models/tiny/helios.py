"""Tiny random-weight Helios models in the ``BestWishYsh/Helios-Base`` layout, built offline.

``t2v models make-tiny --family helios DIR``: ``model_index.json`` (``HeliosPipeline``), ``transformer/``
(``HeliosTransformer3DModel``: Wan 2.1's blocks with the memory patches for the long, mid and short history),
``vae/`` (``AutoencoderKLWan``), ``text_encoder/`` (a small ``UMT5EncoderModel``), ``tokenizer/`` (``ByT5Tokenizer``)
and ``scheduler/`` (``HeliosScheduler``: UniPC on flow sigmas, one stage, shifted by the chunk's token count): Wan's
tiny parts (:mod:`t2v.models.tiny.wan`) with Helios's transformer and scheduler. A few hundred KB.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from t2v.models.tiny.wan import HEAD_DIM, HEADS, TEXT_DIM, WAN21, text_encoder, vae

logger = logging.getLogger(__name__)

INDEX = {"scheduler": ["diffusers", "HeliosScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
         "tokenizer": ["transformers", "ByT5Tokenizer"], "transformer": ["diffusers", "HeliosTransformer3DModel"],
         "vae": ["diffusers", "AutoencoderKLWan"]}


def make_helios(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Helios-Base, text- and image-to-video."""
    import diffusers
    import torch
    from diffusers import HeliosScheduler, HeliosTransformer3DModel
    from transformers import ByT5Tokenizer

    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer(model_max_length=512)
    tokenizer.save_pretrained(out / "tokenizer")
    modules = {
        "transformer": HeliosTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=16,
            out_channels=16, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, rope_dim=(4, 4, 4)),
        "vae": vae(WAN21), "text_encoder": text_encoder(tokenizer)}
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    HeliosScheduler(stages=1, use_dynamic_shifting=True).save_pretrained(out / "scheduler")
    index = {"_class_name": "HeliosPipeline", "_diffusers_version": diffusers.__version__, **INDEX}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    defaults = {"width": 64, "height": 64, "num_frames": 33, "fps": 24, "guidance_scale": 5.0, "num_inference_steps": 3,
                "scheduler": "model", "negative_prompt": ""}
    (out / "t2v.json").write_text(json.dumps({"family": "helios", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny HeliosPipeline model at %s", out)
    return out
