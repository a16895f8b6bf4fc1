"""LTX-2 from a first and a last frame on the tiny LTX-2 model: ``LTX2ConditionPipeline``'s frames and sound with
the two images as conditions at the first and the last latent frame, for the same seed; bitwise resume; the
requests it cannot run refused naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import cancel_after, run


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("ltx2", tmp_path_factory.mktemp("ltx2-flf") / "ltx2", seed=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    folder, rng = tmp_path_factory.mktemp("flf-images"), np.random.default_rng(0)
    paths = []
    for name in ("first.png", "last.png"):
        Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths


def stock(model, result, first, last):
    import torch
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline, LTX2VideoCondition
    from PIL import Image

    r = result.request
    stg = json.loads((model / "t2v.json").read_text())["defaults"]["stg_blocks"]
    pipe = LTX2ConditionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    conditions = [LTX2VideoCondition(frames=Image.open(first).convert("RGB"), index=0),
                  LTX2VideoCondition(frames=Image.open(last).convert("RGB"), index=-1)]
    out = pipe(conditions=conditions, prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height,
               width=r.width, num_frames=r.num_frames, frame_rate=r.fps, num_inference_steps=r.num_inference_steps,
               guidance_scale=r.guidance_scale, spatio_temporal_guidance_blocks=stg,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np")
    return to_uint8(out.frames[0]), out.audio[0].float().numpy()


@pytest.mark.parametrize("frames", [9, 17])
def test_first_and_last_frame_match_the_condition_pipeline(model, images, frames):
    first, last = images
    got, result = run(model, image=first, last_image=str(last), width=128, height=64, num_frames=frames)
    assert got.shape == (frames, 64, 128, 3) and got.std() > 1
    ref, sound = stock(model, result, first, last)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    samples = result.audio.samples
    n = min(samples.shape[1], sound.shape[1])
    assert n > 0.8 * sound.shape[1] and np.abs(samples).max() > 0
    np.testing.assert_allclose(samples[:, :n], np.clip(sound[:, :n], -1, 1), atol=1e-5)
    image_only, _ = run(model, image=first, width=128, height=64, num_frames=frames)
    assert not np.array_equal(got, image_only)  # the last frame is a condition, not ignored


def test_a_cancelled_run_resumes_bitwise(model, images, tmp_path):
    first, last = images
    fields = dict(image=first, last_image=str(last), width=128, height=64, num_frames=17)
    whole, base = run(model, **fields)
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, model, **fields)
    resumed, result = run(model, checkpoint=spec, **fields)
    assert result.record["resumed_from_step"] == 2
    assert np.array_equal(resumed, whole) and np.array_equal(result.audio.samples, base.audio.samples)
    assert result.record["last_image_sha256"] == base.record["last_image_sha256"] is not None


def test_requests_it_cannot_run_are_refused(model, images):
    first, last = images
    with pytest.raises(InvalidRequest) as e:
        run(model, last_image=str(last), width=128, height=64)
    assert e.value.field == "last_image" and "give the first frame as image too" in str(e.value)
