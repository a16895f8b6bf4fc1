"""First-last-frame on a tiny Wan 2.1 FLF2V model: the stock pipeline's frames with ``last_image`` for the same
seed, a bitwise resume, the last frame shaping the end of the clip, and refusals naming ``last_image``."""

from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from t2v.errors import InvalidRequest
from t2v.sampling.base import CheckpointSpec
from t2v.sampling.vae import to_uint8
from tests.families.checks import assert_close_to_stock, run


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("wan-flf")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in ("wan-flf2v", "wan-i2v", "wan")}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("flf-images")
    rng = np.random.default_rng(0)
    out = []
    for name in ("first", "last"):
        path = root / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


def test_first_last_frame_matches_the_stock_pipeline(models, frames, monkeypatch):
    import torch
    import diffusers.pipelines.wan.pipeline_wan_i2v as i2v
    from diffusers import WanImageToVideoPipeline

    if not hasattr(i2v, "ftfy"):
        monkeypatch.setattr(i2v, "ftfy", types.SimpleNamespace(fix_text=lambda text: text), raising=False)
    first, last = frames
    ours, result = run(models["wan-flf2v"], image=first, last_image=str(last))
    other_end = run(models["wan-flf2v"], image=first, last_image=str(first))[0]
    assert np.abs(ours.astype(int) - other_end.astype(int)).max() > 2, "the last frame counts"
    assert result.record["last_image_sha256"] and result.record["last_image"] == str(last)
    r = result.request
    pipe = WanImageToVideoPipeline.from_pretrained(models["wan-flf2v"])
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(image=Image.open(first).convert("RGB"), last_image=Image.open(last).convert("RGB"), prompt=r.prompt,
                  negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
                  num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale, max_sequence_length=512,
                  generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np").frames[0]
    assert_close_to_stock(ours, to_uint8(theirs))


def test_a_cancelled_first_last_frame_run_resumes_bitwise(models, frames, tmp_path):
    from t2v.errors import Cancelled

    first, last = frames
    full = run(models["wan-flf2v"], image=first, last_image=str(last))[0]
    spec = CheckpointSpec(path=tmp_path / "ckpt.pt", every=0, resume=True)
    steps = []
    with pytest.raises(Cancelled):
        run(models["wan-flf2v"], image=first, last_image=str(last), checkpoint=spec,
            on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" else None,
            should_cancel=lambda: len([s for s in steps if s]) >= 2)
    assert spec.path.exists()
    resumed, result = run(models["wan-flf2v"], image=first, last_image=str(last), checkpoint=spec)
    assert result.record["resumed_from_step"] == 2 and np.array_equal(resumed, full)
    other = tmp_path / "other.png"
    Image.open(first).save(other)  # another last frame: that checkpoint is not this run's
    assert run(models["wan-flf2v"], image=first, last_image=str(other), checkpoint=spec)[1].record.get(
        "resumed_from_step") is None


def test_last_image_is_refused_where_no_model_takes_it(models, frames):
    first, last = frames
    for model, fields in ((models["wan"], {"image": None}), (models["wan-i2v"], {}), ("t2v-shapes", {"image": None})):
        with pytest.raises(InvalidRequest) as e:
            run(model, image=fields.get("image", first), last_image=str(last))
        assert e.value.field == "last_image", (model, str(e.value))
    with pytest.raises(InvalidRequest) as e:
        run(models["wan-i2v"], image=first, last_image=str(last))
    assert "FLF2V" in str(e.value)
    for fields in ({"last_image": str(first.parent / "missing.png")}, {}):  # a file that is not there; none at all
        with pytest.raises(InvalidRequest) as e:
            run(models["wan-flf2v"], image=first, **fields)
        assert e.value.field == "last_image", str(e.value)
