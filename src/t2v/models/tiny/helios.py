"""Tiny random-weight Helios models in the ``BestWishYsh/Helios-Base`` layout, built offline.

``t2v models make-tiny --family helios DIR``: ``model_index.json`` (``HeliosPipeline``), ``transformer/``
(``HeliosTransformer3DModel``: Wan 2.1's blocks with the memory patches for the long, mid and short history),
``vae/`` (``AutoencoderKLWan``), ``text_encoder/`` (a small ``UMT5EncoderModel``), ``tokenizer/`` (``ByT5Tokenizer``)
and ``scheduler/`` (``HeliosScheduler``: UniPC on flow sigmas, one stage, shifted by the chunk's token count): Wan's
tiny parts (:mod:`t2v.models.tiny.wan`) with Helios's transformer and scheduler. A few hundred KB.
"""

from __future__ import annotations

from pathlib import Path

from t2v.models.tiny import save_folder
from t2v.models.tiny.wan import HEAD_DIM, HEADS, PARTS_INDEX, TEXT_DIM, wan_parts

INDEX = {**PARTS_INDEX, "scheduler": ["diffusers", "HeliosScheduler"],
         "transformer": ["diffusers", "HeliosTransformer3DModel"]}


def make_helios(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Helios-Base, text- and image-to-video."""
    from diffusers import HeliosScheduler, HeliosTransformer3DModel

    out, modules = wan_parts(out, seed, lambda: HeliosTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=16, out_channels=16,
        text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, rope_dim=(4, 4, 4)))
    defaults = {"width": 64, "height": 64, "num_frames": 33, "fps": 24, "guidance_scale": 5.0, "num_inference_steps": 3,
                "scheduler": "model", "negative_prompt": ""}
    return save_folder(out, modules, HeliosScheduler(stages=1, use_dynamic_shifting=True), pipeline="HeliosPipeline",
                       index=INDEX, family="helios", defaults=defaults, fp16_variant=fp16_variant)
