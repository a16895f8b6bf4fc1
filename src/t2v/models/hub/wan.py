"""The card of Wan 2.1 / 2.2: what t2v knows of the family without importing its code (:mod:`t2v.families.wan`)."""

from __future__ import annotations

from typing import Any

from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob


class WanExtras(FamilyExtras):
    """Wan's own settings."""

    guidance_scale_2: float | None = knob(None, ge=0.0, le=50.0, cli="--guidance-2", help=(
        "Wan 2.2 A14B: guidance of the low-noise expert (default: the model's, else --guidance)."))
    flow_shift: float | None = knob(None, gt=0.0, le=100.0, cli="--flow-shift", help=(
        "Shift of the flow-matching noise schedule (default: the model's scheduler config, 3.0 or 5.0; few-step "
        "distills want their own, e.g. 5.0)."))


# Wan's own negative prompt (Wan2.1 / Wan2.2 repos, wan/configs/shared_config.py: sample_neg_prompt).
NEGATIVE_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
                   "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
                   "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")

# Wan 2.1 T2V 1.3B's official defaults (480x832, 81 frames at 16 fps, 50 steps, guidance 5.0); the scheduler is the
# model's own (UniPC flow matching) and so is the negative prompt.
DEFAULTS = {"width": 832, "height": 480, "num_frames": 81, "fps": 16, "guidance_scale": 5.0, "num_inference_steps": 50,
            "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT}


def stock_arguments(index: dict[str, Any], request: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The stock Wan call's own arguments: its 512-token prompt, and the low-noise expert's guidance of a
    two-expert model (Wan 2.2 A14B, ``boundary_ratio`` in model_index.json)."""
    extra: dict[str, Any] = {"max_sequence_length": 512}
    if index.get("boundary_ratio") is not None and request.get("guidance_scale_2") is not None:
        extra["guidance_scale_2"] = request["guidance_scale_2"]
    return extra

_720P = {"width": 1280, "height": 720}


def _spec(name: str, description: str, defaults: dict[str, Any], download_gb: float, vram_gb: float,
          aliases: tuple[str, ...], *, tasks: tuple[str, ...] = ("t2v",), notes: str = "") -> ModelSpec:
    """A Wan-AI repo (Apache-2.0): :data:`DEFAULTS` updated by ``defaults``. ``download_gb``: the bf16/fp32 files
    diffusers loads; ``vram_gb``: bf16, no offload, at the defaults (approximate). The scheduler is the model's own
    (UniPC flow matching, flow_shift 3.0 at 480p, 5.0 at 720p, as each repo's config has it)."""
    return ModelSpec(id=f"Wan-AI/{name}", family="wan", description=description, defaults={**DEFAULTS, **defaults},
                     license="Apache-2.0", download_gb=download_gb, vram_gb=vram_gb, has_fp16_variant=False,
                     notes=notes, aliases=aliases, tasks=tasks)


CARD = FamilyCard(
    name="wan",
    ref="t2v.families.wan:WanFamily",
    description="Wan 2.1 / 2.2 text-to-video and image-to-video (Wan transformer, UMT5, 3D VAE)",
    pipelines=("WanPipeline", "WanImageToVideoPipeline", "WanVACEPipeline"),
    modes=("video", "i2v"),
    encodes_video=True,  # video-to-video (text-to-video folders): t2v.sampling.v2v and the family's encode_video
    defaults=DEFAULTS,
    tiny={"wan": "t2v.models.tiny.wan:make_wan21", "wan22-ti2v": "t2v.models.tiny.wan:make_wan22_ti2v",
            "wan22-a14b": "t2v.models.tiny.wan:make_wan22_a14b", "wan-i2v": "t2v.models.tiny.wan:make_wan_i2v",
            "wan-flf2v": "t2v.models.tiny.wan:make_wan_flf2v", "wan-vace": "t2v.models.tiny.wan:make_wan_vace"},
    extras=WanExtras,
    kernels=DISPATCHED,  # diffusers' attention dispatcher, no mask
    stock=stock_arguments,
    order=10,
    models=(
        _spec("Wan2.1-T2V-1.3B-Diffusers", "Wan 2.1 text-to-video 1.3B (DiT, UMT5-XXL text encoder, Wan 3D VAE) at 480p.",
              {}, 28.9, 8.2, ("wan", "wan2.1-1.3b"), notes="8.2 GB VRAM with model offload (the official figure, "
              "RTX 4090); the UMT5-XXL encoder is most of the download."),
        _spec("Wan2.1-T2V-14B-Diffusers", "Wan 2.1 text-to-video 14B at 720p (480p works too).", _720P, 80.0, 40.0,
              ("wan2.1-14b",)),
        _spec("Wan2.1-I2V-14B-480P-Diffusers", "Wan 2.1 image-to-video 14B at 480p (CLIP image encoder; needs --image).",
              {"num_inference_steps": 40}, 76.0, 40.0, ("wan2.1-i2v-480p",), tasks=("i2v",)),
        _spec("Wan2.1-I2V-14B-720P-Diffusers", "Wan 2.1 image-to-video 14B at 720p (needs --image).",
              {**_720P, "num_inference_steps": 40}, 76.0, 45.0, ("wan2.1-i2v-720p",), tasks=("i2v",)),
        _spec("Wan2.1-FLF2V-14B-720P-diffusers", "Wan 2.1 first-last-frame-to-video 14B at 720p (needs --image and "
              "--last-image).", _720P, 77.0, 45.0, ("wan2.1-flf2v",), tasks=("i2v", "flf"),
              notes="Sizes approximate (the I2V 720P model's, with the second image's position embeddings)."),
        _spec("Wan2.1-VACE-1.3B-diffusers", "Wan 2.1 VACE 1.3B at 480p: text-to-video guided by a control video (pose, "
              "depth, edges), a mask (inpainting, outpainting) and reference images.", {}, 31.0, 10.0,
              ("wan2.1-vace-1.3b",), tasks=("t2v", "control"),
              notes="Sizes approximate: the 1.3B text-to-video model's plus the control blocks."),
        _spec("Wan2.1-VACE-14B-diffusers", "Wan 2.1 VACE 14B at 720p: control video, mask and reference images.", _720P,
              90.0, 48.0, ("wan2.1-vace-14b",), tasks=("t2v", "control"),
              notes="Sizes approximate: the 14B text-to-video model's plus the control blocks."),
        _spec("Wan2.2-TI2V-5B-Diffusers", "Wan 2.2 TI2V 5B: text- and image-to-video at 720p, 24 fps (high-compression "
              "Wan 2.2 VAE).", {"width": 1280, "height": 704, "num_frames": 121, "fps": 24}, 34.0, 24.0,
              ("wan2.2-5b", "wan2.2-ti2v"), tasks=("t2v", "i2v"),
              notes="Sizes are multiples of 32 (VAE 16x, patch 2). Runs on a 24 GB GPU with model offload."),
        _spec("Wan2.2-T2V-A14B-Diffusers", "Wan 2.2 T2V A14B: two 14B experts (high noise, low noise) switched at "
              "boundary_ratio 0.875.", {**_720P, "num_inference_steps": 40, "guidance_scale": 4.0, "guidance_scale_2": 3.0},
              126.0, 80.0, ("wan2.2-a14b",), notes="With --memory low only the expert the current step needs is on the GPU."),
    ),
)
