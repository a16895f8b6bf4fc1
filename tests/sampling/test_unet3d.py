"""t2v's own UNet3D loop: parity with diffusers, determinism, cancellation, checkpoints."""

import numpy as np
import pytest
import torch

from t2v.sampling.base import CheckpointSpec
from t2v.errors import Cancelled, InvalidRequest
from t2v import generate
from t2v.requests import GenerationRequest

SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def _request(model, **kw):
    fields = dict(prompt="a red circle moving right", model=str(model), seed=5, num_frames=6, width=48, height=40,
                  num_inference_steps=3, formats=())
    fields.update(kw)
    return GenerationRequest.create(**fields)


@pytest.fixture(scope="module")
def stock_pipeline(tiny_model):
    import diffusers

    pipe = diffusers.TextToVideoSDPipeline.from_pretrained(tiny_model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("name", ["ddim", "dpm++"])
def test_frames_match_stock_text_to_video_pipeline(tiny_model, stock_pipeline, name):
    import diffusers

    cls, kwargs = SCHEDULERS[name]
    ours = generate(_request(tiny_model, scheduler=name))
    pipe = stock_pipeline
    pipe.scheduler = getattr(diffusers, cls).from_config(pipe.scheduler.config, **kwargs)
    theirs = pipe(
        ours.request.prompt, negative_prompt=ours.request.negative_prompt, num_frames=6, width=48, height=40,
        num_inference_steps=3, guidance_scale=ours.request.guidance_scale,
        generator=torch.Generator("cpu").manual_seed(5), output_type="np",
    ).frames[0]
    assert theirs.shape == (6, 40, 48, 3) == ours.frames.shape
    diff = np.abs(theirs - ours.frames.astype(np.float32) / 255.0)
    assert diff.max() <= 1.0 / 255 + 1e-6  # only uint8 rounding
    assert theirs.std() > 0.01  # not a blank clip


def test_same_seed_same_frames_other_seed_differs(tiny_model):
    a = generate(_request(tiny_model))
    b = generate(_request(tiny_model))
    c = generate(_request(tiny_model, seed=6))
    assert np.array_equal(a.frames, b.frames)
    assert a.record["frames_sha256"] == b.record["frames_sha256"]
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_runs(tiny_model, name):
    r = generate(_request(tiny_model, scheduler=name, num_inference_steps=2))
    assert r.frames.shape == (6, 40, 48, 3) and r.record["scheduler"] == name


def test_progress_per_step_and_cancel_between_steps(tiny_model):
    events = []

    def cancel_after_two():
        return sum(1 for e in events if e.stage == "denoise" and e.step) >= 2

    with pytest.raises(Cancelled, match="step 2 of 5"):
        generate(_request(tiny_model, num_inference_steps=5), on_progress=events.append, should_cancel=cancel_after_two)
    steps = [e.step for e in events if e.stage == "denoise" and e.step]
    assert steps == [1, 2]
    assert events[0].stage == "load"
    assert all(e.total == 5 for e in events if e.stage == "denoise" and e.step)
    assert events[-1].eta_s is not None and events[-1].eta_s >= 0


@pytest.mark.parametrize("name", ["dpm++", "ddim", "euler"])
def test_checkpoint_resume_gives_identical_frames(tiny_model, tmp_path, name):
    full = generate(_request(tiny_model, scheduler=name, num_inference_steps=6))
    spec = CheckpointSpec(path=tmp_path / "job.ckpt", every=2)
    seen = []
    with pytest.raises(Cancelled):
        generate(_request(tiny_model, scheduler=name, num_inference_steps=6), checkpoint=spec,
                 on_progress=seen.append, should_cancel=lambda: any(e.step == 3 for e in seen))
    assert spec.path.is_file()
    state = torch.load(spec.path, weights_only=False)
    assert state["step"] == 3  # saved on cancel, after step 3
    resumed = generate(_request(tiny_model, scheduler=name, num_inference_steps=6), checkpoint=spec)
    assert resumed.record["resumed_from_step"] == 3
    assert np.array_equal(resumed.frames, full.frames)


def test_checkpoint_of_another_request_is_ignored(tiny_model, tmp_path):
    spec = CheckpointSpec(path=tmp_path / "job.ckpt", every=1)
    generate(_request(tiny_model, num_inference_steps=3), checkpoint=spec)
    other = generate(_request(tiny_model, num_inference_steps=3, seed=99), checkpoint=spec)
    assert "resumed_from_step" not in other.record
    assert np.array_equal(other.frames, generate(_request(tiny_model, num_inference_steps=3, seed=99)).frames)


def test_long_prompt_truncated_with_warning_in_record(tiny_model):
    prompt = " ".join(["a red circle moving right over the big blue ocean"] * 12)
    r = generate(_request(tiny_model, prompt=prompt))
    assert any("truncated to 77 tokens" in w for w in r.record["warnings"])


def test_an_absent_device_is_refused_and_a_dtype_fallback_is_recorded(tiny_model):
    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    with pytest.raises(InvalidRequest) as e:  # an explicit device that is not here: refused before loading
        generate(_request(tiny_model, device="cuda", dtype="fp16"))
    assert e.value.field == "device" and "cpu" in str(e.value)
    r = generate(_request(tiny_model, device="cpu", dtype="fp16"))  # a dtype the device cannot use falls back
    assert r.record["device"] == "cpu" and r.record["dtype"] == "fp32"
    assert any("fp16" in w for w in r.record["warnings"])


def test_guidance_at_most_one_skips_the_unconditional_pass(tiny_model):
    a = generate(_request(tiny_model, guidance_scale=1.0))
    b = generate(_request(tiny_model, guidance_scale=1.0, negative_prompt="something else entirely"))
    assert np.array_equal(a.frames, b.frames)  # negative prompt unused without CFG


@pytest.mark.gpu
def test_gpu_half_precision_generates(tiny_model):
    r = generate(_request(tiny_model, device="cuda", dtype="fp16"))
    assert r.record["device"].startswith("cuda") and r.record["weights_variant"] == "fp16"
    assert np.isfinite(r.frames).all() and r.frames.std() > 0


def test_preview_per_step_has_the_video_size(tiny_model):
    previews = []
    generate(_request(tiny_model), on_preview=lambda step, img: previews.append((step, img)))
    assert [s for s, _ in previews] == [1, 2, 3]
    for _, img in previews:
        assert img.shape == (40, 48, 3) and img.dtype == np.uint8
    assert not np.array_equal(previews[0][1], previews[-1][1])  # it changes as denoising goes on
