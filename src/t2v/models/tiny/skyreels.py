"""Tiny random-weight SkyReels-V2 models in the exact ``Skywork/SkyReels-V2-*-Diffusers`` folder layout, built offline.

``t2v models make-tiny --family skyreels-v2|skyreels-v2-i2v DIR``. SkyReels-V2 is Wan 2.1's architecture, so the
folders are the Wan builder's (:mod:`t2v.models.tiny.wan`) with the SkyReels pipeline and transformer classes:
``SkyReelsV2Pipeline`` (text-to-video, the hub's flow shift 8.0), ``SkyReelsV2ImageToVideoPipeline`` (a CLIP
image encoder, and a ``CLIPProcessor`` as ``image_processor``, as the hub repos have it; flow shift 5.0) and
``SkyReelsV2DiffusionForcingPipeline`` (``skyreels-v2-df``: the transformer's fps embedding on, asynchronous
diffusion forcing, each latent frame one step behind the one before, in 9-frame windows).
"""

from __future__ import annotations

from pathlib import Path

from t2v.models.tiny.wan import Kind, build

TRANSFORMER = "SkyReelsV2Transformer3DModel"
SKYREELS_V2 = Kind(pipeline="SkyReelsV2Pipeline", family="skyreels-v2", transformer_class=TRANSFORMER, flow_shift=8.0)
SKYREELS_V2_I2V = Kind(pipeline="SkyReelsV2ImageToVideoPipeline", family="skyreels-v2", transformer_class=TRANSFORMER,
                       in_channels=16 + 4 + 16, image_encoder=True, clip_processor=True, flow_shift=5.0)


def make_skyreels_v2(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """SkyReels-V2 T2V (14B 540P / 720P layout): ``SkyReelsV2Pipeline``."""
    return build(Path(out), SKYREELS_V2, seed=seed, fp16_variant=fp16_variant)


def make_skyreels_v2_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """SkyReels-V2 I2V (1.3B / 14B layout): ``SkyReelsV2ImageToVideoPipeline`` with a CLIP image encoder."""
    return build(Path(out), SKYREELS_V2_I2V, seed=seed, fp16_variant=fp16_variant)


SKYREELS_V2_DF = Kind(pipeline="SkyReelsV2DiffusionForcingPipeline", family="skyreels-v2-df", transformer_class=TRANSFORMER,
                      flow_shift=8.0, transformer_extra=(("inject_sample_info", True),),
                      defaults_extra=(("ar_step", 1), ("causal_block_size", 1), ("base_num_frames", 9),
                                      ("overlap_history", 5), ("addnoise_condition", 20.0)))


def make_skyreels_v2_df(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """SkyReels-V2 DF (1.3B / 14B layout): ``SkyReelsV2DiffusionForcingPipeline``; its t2v.json sets asynchronous
    diffusion forcing and 9-frame windows, so a longer request runs as a long video."""
    return build(Path(out), SKYREELS_V2_DF, seed=seed, fp16_variant=fp16_variant)
