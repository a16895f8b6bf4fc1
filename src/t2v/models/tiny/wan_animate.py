"""A tiny random-weight Wan-Animate model in the exact ``Wan-AI/Wan2.2-Animate-14B-Diffusers`` folder layout, built
offline: ``t2v models make-tiny --family wan-animate DIR``.

The Wan builder's folder (:mod:`t2v.models.tiny.wan`: UMT5, Wan 2.1's VAE, UniPC, a CLIP image encoder and its
processor) with ``WanAnimatePipeline`` and a ``WanAnimateTransformer3DModel``: 36 input channels (the latents, the
reference and condition latents, their mask), a motion encoder for 16x16 face frames, a face adapter after every
block, and 9-frame segments carrying one frame over in ``t2v.json``.
"""

from __future__ import annotations

from pathlib import Path

from t2v.models.tiny.wan import Kind, build

FACE = 16  # the motion encoder's face size (512 in the real model)
MOTION = (("motion_encoder_size", FACE), ("motion_encoder_channel_sizes", {"4": 8, "8": 8, "16": 8}),
          ("motion_style_dim", 16), ("motion_dim", 4), ("motion_encoder_dim", 16), ("face_encoder_hidden_dim", 16),
          ("face_encoder_num_heads", 2), ("inject_face_latents_blocks", 1), ("motion_encoder_batch_size", 4))
WAN_ANIMATE = Kind(pipeline="WanAnimatePipeline", family="wan-animate", transformer_class="WanAnimateTransformer3DModel",
                   in_channels=16 + 4 + 16, image_encoder=True, flow_shift=5.0, width=32, height=32,
                   transformer_extra=MOTION,
                   defaults_extra=(("guidance_scale", 1.0), ("fps", 30), ("segment_frames", 9),
                                   ("segment_overlap", 1)))


def make_wan_animate(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Wan 2.2 Animate (14B layout): ``WanAnimatePipeline`` with a CLIP image encoder and the motion and face
    encoders."""
    return build(Path(out), WAN_ANIMATE, seed=seed, fp16_variant=fp16_variant)
