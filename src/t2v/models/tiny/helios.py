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


def _pyramid(out: Path, seed: int, fp16_variant: bool, scheduler, *, distilled: bool, defaults: dict) -> Path:
    from diffusers import HeliosTransformer3DModel

    out, modules = wan_parts(out, seed, lambda: HeliosTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=16, out_channels=16,
        text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, rope_dim=(4, 4, 4)))
    index = {**INDEX, "scheduler": ["diffusers", type(scheduler).__name__], "is_distilled": distilled,
             "is_cfg_zero_star": not distilled}
    return save_folder(out, modules, scheduler, pipeline="HeliosPyramidPipeline", index=index, family="helios",
                       defaults={"width": 64, "height": 64, "num_frames": 33, "fps": 24, "scheduler": "model",
                                 "negative_prompt": "", **defaults}, fp16_variant=fp16_variant)


def make_helios_mid(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Helios-Mid's layout: ``HeliosPyramidPipeline`` with CFG-Zero* and a 3-stage ``HeliosScheduler`` (UniPC)."""
    from diffusers import HeliosScheduler

    return _pyramid(out, seed, fp16_variant, HeliosScheduler(stages=3, gamma=0.25, use_dynamic_shifting=True), distilled=False,
                    defaults={"guidance_scale": 5.0, "num_inference_steps": 6})


def make_helios_distilled(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Helios-Distilled's layout: ``HeliosPyramidPipeline`` with a 3-stage ``HeliosDMDScheduler``, no guidance, the
    first chunk amplified."""
    from diffusers import HeliosDMDScheduler

    return _pyramid(out, seed, fp16_variant, HeliosDMDScheduler(stages=3, gamma=0.25, use_dynamic_shifting=True),
                    distilled=True, defaults={"guidance_scale": 1.0, "num_inference_steps": 6,
                                              "amplify_first_chunk": True})
