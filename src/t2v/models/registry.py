"""Known models and their defaults; local folders get theirs from ``t2v.json`` or their family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from t2v.models.catalog import CATALOG
from t2v.models.hub import CARDS, WAN
from t2v.models.spec import BUNDLED_DIR, ModelSpec
from t2v.requests import DEFAULT_NEGATIVE_PROMPT

__all__ = ["BUNDLED_DIR", "REGISTRY", "ModelSpec", "canonical_id", "folder_info", "lookup"]

MODELSCOPE_DEFAULTS: dict[str, Any] = {
    "width": 256,
    "height": 256,
    "num_frames": 16,
    "fps": 8,
    "guidance_scale": 9.0,
    "num_inference_steps": 25,
    "scheduler": "dpm++",
    "negative_prompt": DEFAULT_NEGATIVE_PROMPT,
}

# Text-to-image models for image mode (t2v image / t2v sequence).
SD_DEFAULTS: dict[str, Any] = {
    "width": 512,
    "height": 512,
    "num_frames": 16,
    "fps": 12,
    "guidance_scale": 7.5,
    "num_inference_steps": 25,
    "scheduler": "dpm++",
    "negative_prompt": "blurry, low quality, distorted, artifacts",
}

# The model t2v trains itself (t2v train --data shapes) and ships inside the package.
SHAPES_DEFAULTS: dict[str, Any] = {
    "width": 64,
    "height": 64,
    "num_frames": 8,
    "fps": 8,
    "guidance_scale": 5.0,
    "num_inference_steps": 25,
    "scheduler": "dpm++",
    "negative_prompt": "",
}
# Wan 2.1 T2V 1.3B's official defaults (480x832, 81 frames at 16 fps, 50 steps, guidance 5.0); the scheduler
# and negative prompt are the model's own (t2v.families.wan).
WAN_DEFAULTS: dict[str, Any] = dict(WAN.defaults)


def _shapes(model_id: str, description: str, notes: str, bundled: str, aliases: tuple[str, ...] = ()) -> ModelSpec:
    """A version of the model t2v trains itself and ships in the package (``assets/<bundled>``)."""
    return ModelSpec(id=model_id, family="modelscope", description=description, defaults=SHAPES_DEFAULTS,
                     license="Apache-2.0", download_gb=0.0, vram_gb=0.1, has_fp16_variant=False, notes=notes,
                     prompt_example="a red circle moving right", aliases=aliases, bundled=bundled)


_BASE = (
        ModelSpec(
            id="damo-vilab/text-to-video-ms-1.7b",
            family="modelscope",
            description="ModelScope text-to-video 1.7B (UNet3D, SD 1.x VAE, OpenCLIP ViT-H text encoder).",
            defaults=MODELSCOPE_DEFAULTS,
            license="CC-BY-NC-ND-4.0 (research and non-commercial use only)",
            download_gb=3.5,
            vram_gb=8.0,
            has_fp16_variant=True,
            aliases=("modelscope", "ms-1.7b"),
        ),
        ModelSpec(
            id="cerspense/zeroscope_v2_576w",
            family="modelscope",
            description="Zeroscope v2 576w: ModelScope fine-tuned for 576x320 watermark-free clips.",
            defaults={**MODELSCOPE_DEFAULTS, "width": 576, "height": 320, "num_frames": 24},
            license="CC-BY-NC-4.0 (non-commercial use only)",
            download_gb=3.5,
            vram_gb=7.9,
            has_fp16_variant=False,
            aliases=("zeroscope",),
        ),
        ModelSpec(
            id="stable-diffusion-v1-5/stable-diffusion-v1-5",
            family="sd",
            description="Stable Diffusion 1.5: text-to-image at 512x512; the default for t2v image / sequence.",
            defaults=SD_DEFAULTS,
            license="CreativeML OpenRAIL-M",
            download_gb=2.6,
            vram_gb=3.5,
            has_fp16_variant=True,
            aliases=("sd15", "sd-1.5"),
            tasks=("image",),
        ),
        ModelSpec(
            id="stabilityai/stable-diffusion-2-1",
            family="sd",
            description="Stable Diffusion 2.1 (v-prediction, OpenCLIP ViT-H text encoder) at 768x768.",
            defaults={**SD_DEFAULTS, "width": 768, "height": 768},
            license="CreativeML OpenRAIL++-M",
            download_gb=2.6,
            vram_gb=5.0,
            has_fp16_variant=True,
            aliases=("sd21", "sd-2.1"),
            tasks=("image",),
        ),
        ModelSpec(
            id="stabilityai/stable-diffusion-xl-base-1.0",
            family="sdxl",
            description="SDXL base 1.0 at 1024x1024 (two text encoders, pooled text + size conditioning).",
            defaults={**SD_DEFAULTS, "width": 1024, "height": 1024},
            license="CreativeML OpenRAIL++-M",
            download_gb=6.9,
            vram_gb=10.0,
            has_fp16_variant=True,
            notes="The fp16 VAE of this repo overflows in fp16; t2v runs it as the plan's dtype (use bf16 on GPU).",
            aliases=("sdxl",),
            tasks=("image",),
        ),
        # Wan 2.1 / 2.2 (Apache-2.0). Defaults from the official configs and model cards; the scheduler is the
        # model's own (UniPC flow matching, flow_shift 3.0 at 480p, 5.0 at 720p, as each repo's config has it).
        # download_gb: the bf16/fp32 files diffusers loads; vram_gb: bf16, no offload, at the defaults (approximate).
        ModelSpec(
            id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            family="wan",
            description="Wan 2.1 text-to-video 1.3B (DiT, UMT5-XXL text encoder, Wan 3D VAE) at 480p.",
            defaults={**WAN_DEFAULTS},
            license="Apache-2.0",
            download_gb=28.9,
            vram_gb=8.2,
            has_fp16_variant=False,
            notes="8.2 GB VRAM with model offload (the official figure, RTX 4090); the UMT5-XXL encoder is most of the download.",
            aliases=("wan", "wan2.1-1.3b"),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.1-T2V-14B-Diffusers",
            family="wan",
            description="Wan 2.1 text-to-video 14B at 720p (480p works too).",
            defaults={**WAN_DEFAULTS, "width": 1280, "height": 720},
            license="Apache-2.0",
            download_gb=80.0,
            vram_gb=40.0,
            has_fp16_variant=False,
            aliases=("wan2.1-14b",),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            family="wan",
            description="Wan 2.1 image-to-video 14B at 480p (CLIP image encoder; needs --image).",
            defaults={**WAN_DEFAULTS, "num_inference_steps": 40},
            license="Apache-2.0",
            download_gb=76.0,
            vram_gb=40.0,
            has_fp16_variant=False,
            aliases=("wan2.1-i2v-480p",),
            tasks=("i2v",),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
            family="wan",
            description="Wan 2.1 image-to-video 14B at 720p (needs --image).",
            defaults={**WAN_DEFAULTS, "width": 1280, "height": 720, "num_inference_steps": 40},
            license="Apache-2.0",
            download_gb=76.0,
            vram_gb=45.0,
            has_fp16_variant=False,
            aliases=("wan2.1-i2v-720p",),
            tasks=("i2v",),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
            family="wan",
            description="Wan 2.1 first-last-frame-to-video 14B at 720p (needs --image and --last-image).",
            defaults={**WAN_DEFAULTS, "width": 1280, "height": 720},
            license="Apache-2.0",
            download_gb=77.0,
            vram_gb=45.0,
            has_fp16_variant=False,
            notes="Sizes approximate (the I2V 720P model's, with the second image's position embeddings).",
            aliases=("wan2.1-flf2v",),
            tasks=("i2v", "flf"),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
            family="wan",
            description="Wan 2.1 VACE 1.3B at 480p: text-to-video guided by a control video (pose, depth, edges), "
                        "a mask (inpainting, outpainting) and reference images.",
            defaults={**WAN_DEFAULTS},
            license="Apache-2.0",
            download_gb=31.0,
            vram_gb=10.0,
            has_fp16_variant=False,
            notes="Sizes approximate: the 1.3B text-to-video model's plus the control blocks.",
            aliases=("wan2.1-vace-1.3b",),
            tasks=("t2v", "control"),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.1-VACE-14B-diffusers",
            family="wan",
            description="Wan 2.1 VACE 14B at 720p: control video, mask and reference images.",
            defaults={**WAN_DEFAULTS, "width": 1280, "height": 720},
            license="Apache-2.0",
            download_gb=90.0,
            vram_gb=48.0,
            has_fp16_variant=False,
            notes="Sizes approximate: the 14B text-to-video model's plus the control blocks.",
            aliases=("wan2.1-vace-14b",),
            tasks=("t2v", "control"),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            family="wan",
            description="Wan 2.2 TI2V 5B: text- and image-to-video at 720p, 24 fps (high-compression Wan 2.2 VAE).",
            defaults={**WAN_DEFAULTS, "width": 1280, "height": 704, "num_frames": 121, "fps": 24},
            license="Apache-2.0",
            download_gb=34.0,
            vram_gb=24.0,
            has_fp16_variant=False,
            notes="Sizes are multiples of 32 (VAE 16x, patch 2). Runs on a 24 GB GPU with model offload.",
            aliases=("wan2.2-5b", "wan2.2-ti2v"),
            tasks=("t2v", "i2v"),
        ),
        ModelSpec(
            id="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
            family="wan",
            description="Wan 2.2 T2V A14B: two 14B experts (high noise, low noise) switched at boundary_ratio 0.875.",
            defaults={**WAN_DEFAULTS, "width": 1280, "height": 720, "num_inference_steps": 40, "guidance_scale": 4.0,
                      "guidance_scale_2": 3.0},
            license="Apache-2.0",
            download_gb=126.0,
            vram_gb=80.0,
            has_fp16_variant=False,
            notes="With --memory low only the expert the current step needs is on the GPU.",
            aliases=("wan2.2-a14b",),
        ),
        _shapes("t2v-shapes", "t2v's own 64x64, 8-frame model of coloured shapes moving on black (docs/model-card.md).",
                "Ships with t2v; trained on 2 CPU cores by `t2v train --data shapes`.", "t2v-shapes", aliases=("shapes",)),
        _shapes("t2v-shapes@v5", "The previous t2v-shapes (v5), kept so that records made with it replay identically.",
                "Its blue triangles moving right can come out round (docs/model-card.md); t2v replay picks it for "
                "records that name its hash.", "t2v-shapes-v5"),
        _shapes("t2v-shapes@v4", "The previous t2v-shapes (v4), kept so that records made with it replay identically.",
                "Its frames may change colour (docs/model-card.md); t2v replay picks it for records that name its hash.",
                "t2v-shapes-v4"),
)


REGISTRY: dict[str, ModelSpec] = {spec.id: spec for spec in (*_BASE, *(spec for card in CARDS for spec in card.models))}
_ALIASES = {alias: spec.id for spec in REGISTRY.values() for alias in spec.aliases}


def canonical_id(model: str) -> str:
    """Map an alias (``modelscope``) to its hub id; other names pass through."""
    return _ALIASES.get(model, model)


def lookup(model: str) -> ModelSpec | None:
    return REGISTRY.get(canonical_id(model))


def folder_info(path: Path) -> tuple[str, dict[str, Any]]:
    """Family and defaults of a local model folder: its family's defaults (the family found from ``t2v.json``
    or model_index.json's pipeline class, see :func:`t2v.families.family_of_folder`), updated by ``t2v.json``.

    A folder without model_index.json gives ("unknown", ModelScope's defaults); loading it fails later with
    the reason. A pipeline class no family knows raises ModelUnavailable naming it."""
    if not (path / "model_index.json").is_file():
        return "unknown", dict(MODELSCOPE_DEFAULTS)
    family = CATALOG.family_of_folder(path)
    defaults = family.folder_defaults(path)
    meta_file = path / "t2v.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            defaults.update(meta.get("defaults", {}))
        except (ValueError, AttributeError):
            pass
    return family.name, defaults
