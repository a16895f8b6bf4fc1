"""The card of Wan-Animate: what t2v knows of the family without importing its code (:mod:`t2v.families.wan_animate`).

Wan 2.2 Animate (``WanAnimatePipeline``) moves the character of a reference image as a driving video moves: its
pose video (skeletons drawn frame by frame) and its face video (the face cropped, frame by frame) are the inputs,
and in *replace* mode a background video and a mask put the character into that scene instead. A clip is made in
segments of ``segment_frames`` frames, each continuing the last decoded frames of the one before. Defaults are the
stock call's: 1280x720, 77-frame segments, 20 steps, guidance 1.0 (no classifier-free guidance), one frame carried
over; 30 fps, the frame rate Wan-Animate's preprocessing extracts pose and face videos at. Licence: Apache-2.0.
"""

from __future__ import annotations

from t2v.models.hub.wan import NEGATIVE_PROMPT
from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob

PIPELINE = "WanAnimatePipeline"
OVERLAPS = (1, 5)  # the frames a segment takes over from the one before: the stock call takes 1 or 5


class WanAnimateExtras(FamilyExtras):
    """Wan-Animate's own settings (the stock call's arguments)."""

    segment_frames: int | None = knob(None, ge=5, le=1001, cli="--segment-frames", help=(
        "Wan-Animate: frames per segment, 4k+1 (a longer clip is made segment by segment; the model's default, "
        "77)."))
    segment_overlap: int | None = knob(None, ge=1, le=5, cli="--segment-overlap", help=(
        "Wan-Animate: frames each segment takes over from the one before, 1 or 5 (the model's default, 1)."))


DEFAULTS = {"width": 1280, "height": 720, "num_frames": 77, "fps": 30, "guidance_scale": 1.0,
            "num_inference_steps": 20, "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT,
            "segment_frames": 77, "segment_overlap": 1}


def stock_arguments(index, request, defaults) -> dict:
    """The stock call's own arguments: its 512-token prompt and the segments."""
    extras = request.get("extras") or {}
    return {"max_sequence_length": 512, "segment_frame_length": extras.get("segment_frames", 77),
            "prev_segment_conditioning_frames": extras.get("segment_overlap", 1)}


CARD = FamilyCard(
    name="wan-animate",
    ref="t2v.families.wan_animate:WanAnimateFamily",
    description="Wan 2.2 Animate: a character image moved by a pose and a face video, or put into a scene "
                "(replace mode); made in segments",
    pipelines=(PIPELINE,),
    modes=("i2v",),
    defaults=dict(DEFAULTS),
    tiny={"wan-animate": "t2v.models.tiny.wan_animate:make_wan_animate"},
    extras=WanAnimateExtras,
    kernels=DISPATCHED,  # diffusers' attention dispatcher, no mask
    stock=stock_arguments,
    order=12,
    models=(
        ModelSpec(id="Wan-AI/Wan2.2-Animate-14B-Diffusers", family="wan-animate",
                  description="Wan 2.2 Animate 14B at 720p: character animation (pose and face videos) and "
                              "replacement (with a background video and a mask).",
                  defaults=dict(DEFAULTS), license="Apache-2.0", download_gb=70.0, vram_gb=45.0,
                  has_fp16_variant=False, aliases=("wan-animate", "wan2.2-animate"), tasks=("animate",),
                  notes="Sizes approximate (the Wan 2.1 I2V 14B repo's, with the motion and face encoders). The "
                        "pose and face videos come from Wan-Animate's preprocessing (pose estimation, face crops)."),
    ),
)
