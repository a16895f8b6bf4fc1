"""LTX-2's two-stage path (``extras.latent_upscale``) on the tiny LTX-2 model: the frames and sound of diffusers'
documented recipe (stage 1 at half size with ``output_type="latent"``, ``LTX2LatentUpsamplePipeline``, stage 2
with the distilled LoRA, the stage-2 sigmas and ``noise_scale``) for the same seed, with and without the stage-2
LoRA; with a first and a last frame and with an IC-LoRA's reference, the same recipe on the condition and
in-context pipelines; resume across the stages; previews at each stage's size; the LoRA switched on for stage 2
only; and the requests it cannot run refused before loading, naming the field and the nearest valid value."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import assert_periodic_checkpoints_resume_bitwise, cancel_after, random_lora, run
from tests.families.test_ltx2_condition import images  # noqa: F401  (fixture: a first and a last frame)
from tests.families.test_ltx2_ic_lora import inputs  # noqa: F401  (fixture: a reference clip and IC-LoRAs)

UPSCALE = {"width": 128, "height": 64, "extras": {"latent_upscale": True}}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("ltx2", tmp_path_factory.mktemp("ltx2-upscale") / "ltx2", seed=0)


def with_defaults(model, tmp_path, **changes):
    """A copy of the tiny folder with ``changes`` to its t2v.json defaults (None removes a key)."""
    folder = tmp_path / "variant"
    shutil.copytree(model, folder)
    meta = json.loads((folder / "t2v.json").read_text())
    meta["defaults"].update(changes)
    (folder / "t2v.json").write_text(json.dumps(meta))
    return folder


def stock_two_stages(model, result, lora: str | None, own=None, image=None):
    """diffusers' LTX-2 two-stage recipe for the request ``result`` ran: (frames uint8, sound). With ``own`` (a
    LoRA file of the user's) it is on in both stages, the stage-2 LoRA beside it in stage 2; with ``image``,
    LTX2ImageToVideoPipeline in both stages."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2ImageToVideoPipeline, LTX2Pipeline
    from PIL import Image
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES

    r = result.request
    stg = json.loads((model / "t2v.json").read_text())["defaults"]["stg_blocks"]
    pipe = (LTX2Pipeline if image is None else LTX2ImageToVideoPipeline).from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if own is not None:
        pipe.load_lora_weights(str(own), adapter_name="own")
        pipe.set_adapters("own", 1.0)
    common = dict(prompt=r.prompt, negative_prompt=r.negative_prompt, num_frames=r.num_frames, frame_rate=r.fps,
                  spatio_temporal_guidance_blocks=stg, generator=torch.Generator("cpu").manual_seed(r.seed))
    if image is not None:
        common["image"] = Image.open(image).convert("RGB")
    video, audio = pipe(height=r.height // 2, width=r.width // 2, num_inference_steps=r.num_inference_steps,
                        guidance_scale=r.guidance_scale, output_type="latent", return_dict=False, **common)
    upsampler = LTX2LatentUpsamplerModel.from_pretrained(model, subfolder="latent_upsampler")
    video = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)(
        latents=video, output_type="latent", return_dict=False)[0]
    if lora is not None:
        pipe.load_lora_weights(str(model), weight_name=lora, adapter_name="stage_2_distilled")
        names = ["own", "stage_2_distilled"] if own is not None else ["stage_2_distilled"]
        pipe.set_adapters(names, [1.0] * len(names))
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, use_dynamic_shifting=False,
                                                                 shift_terminal=None)
    frames, sound = pipe(latents=video, audio_latents=audio, height=r.height, width=r.width, num_inference_steps=3,
                         noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0], sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
                         guidance_scale=1.0, output_type="np", return_dict=False, **common)
    return to_uint8(frames[0]), sound[0].float().numpy()


def stock_conditioned_two_stages(model, result, *, first=None, last=None, reference=None, ic=None, downscale=1):
    """The same recipe on the pipelines with conditions: stage 1 is ``LTX2ConditionPipeline`` with the images (or
    ``LTX2InContextPipeline`` with the IC-LoRA ``ic`` and the clip ``reference``, as t2v reads it, beside them), at
    half size with ``output_type="latent"``; stage 2 is ``LTX2ConditionPipeline`` with the images at full size
    (``LTX2Pipeline`` without images) given the upscaled ``latents``, with the distilled LoRA alone."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2InContextPipeline, LTX2Pipeline
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplePipeline
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline, LTX2VideoCondition
    from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition
    from diffusers.pipelines.ltx2.utils import STAGE_2_DISTILLED_SIGMA_VALUES
    from PIL import Image

    from t2v.inputs import load_video

    r = result.request
    stg = json.loads((model / "t2v.json").read_text())["defaults"]["stg_blocks"]
    conditions = [LTX2VideoCondition(frames=Image.open(p).convert("RGB"), index=i)
                  for p, i in ((first, 0), (last, -1)) if p is not None] or None
    common = dict(prompt=r.prompt, negative_prompt=r.negative_prompt, num_frames=r.num_frames, frame_rate=r.fps,
                  spatio_temporal_guidance_blocks=stg, generator=torch.Generator("cpu").manual_seed(r.seed))
    extra = {}
    if reference is not None:
        pipe = LTX2InContextPipeline.from_pretrained(model)
        pipe.load_lora_weights(str(ic), adapter_name="ic")
        pipe.set_adapters("ic", 1.0)
        clip = load_video(reference, width=r.width, height=r.height, num_frames=r.num_frames, field="control_video")
        extra = dict(reference_conditions=[LTX2ReferenceCondition(frames=clip.frames, strength=1.0)],
                     reference_downscale_factor=downscale)
    else:
        pipe = LTX2ConditionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    video, audio = pipe(conditions=conditions, height=r.height // 2, width=r.width // 2,
                        num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
                        output_type="latent", return_dict=False, **common, **extra)
    upsampler = LTX2LatentUpsamplerModel.from_pretrained(model, subfolder="latent_upsampler")
    video = LTX2LatentUpsamplePipeline(vae=pipe.vae, latent_upsampler=upsampler)(
        latents=video, output_type="latent", return_dict=False)[0]
    pipe.load_lora_weights(str(model), weight_name="distilled-lora.safetensors", adapter_name="stage_2_distilled")
    pipe.set_adapters(["stage_2_distilled"], [1.0])  # the IC-LoRA off
    second = (LTX2ConditionPipeline if conditions else LTX2Pipeline).from_pipe(pipe)
    second.set_progress_bar_config(disable=True)
    second.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, use_dynamic_shifting=False,
                                                                   shift_terminal=None)
    frames, sound = second(latents=video, audio_latents=audio, height=r.height, width=r.width, num_inference_steps=3,
                           noise_scale=STAGE_2_DISTILLED_SIGMA_VALUES[0], sigmas=STAGE_2_DISTILLED_SIGMA_VALUES,
                           guidance_scale=1.0, output_type="np", return_dict=False, **common,
                           **({"conditions": conditions} if conditions else {}))
    return to_uint8(frames[0]), sound[0].float().numpy()


def assert_same_as_stock(frames, result, ref_frames, ref_sound):
    assert frames.shape == ref_frames.shape == (9, 64, 128, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - ref_frames.astype(int)).max() <= 1
    samples = result.audio.samples
    n = min(samples.shape[1], ref_sound.shape[1])
    assert n > 0.8 * ref_sound.shape[1] and np.abs(samples).max() > 0
    np.testing.assert_allclose(samples[:, :n], np.clip(ref_sound[:, :n], -1, 1), atol=1e-5)


def test_two_stages_match_the_documented_recipe_with_the_distilled_lora(model):
    frames, result = run(model, **UPSCALE)
    assert result.request.extras["latent_upscale"] is True
    assert_same_as_stock(frames, result, *stock_two_stages(model, result, "distilled-lora.safetensors"))
    one_stage, _ = run(model, width=128, height=64)
    assert np.abs(frames.astype(int) - one_stage.astype(int)).mean() > 2  # the second stage changed the clip


def test_a_distilled_checkpoint_runs_stage_two_without_a_lora(model, tmp_path):
    folder = with_defaults(model, tmp_path, stage_2_lora=None)
    frames, result = run(folder, **UPSCALE)
    assert_same_as_stock(frames, result, *stock_two_stages(folder, result, None))
    with_lora, _ = run(model, **UPSCALE)
    assert not np.array_equal(frames, with_lora)  # the LoRA is what differs


def test_the_model_default_turns_it_on_and_the_request_can_turn_it_off(model, tmp_path):
    folder = with_defaults(model, tmp_path, latent_upscale=True)
    on, result = run(folder, width=128, height=64)
    assert result.request.extras["latent_upscale"] is True
    assert np.array_equal(on, run(model, **UPSCALE)[0])
    off, result = run(folder, width=128, height=64, extras={"latent_upscale": False})
    assert result.request.extras["latent_upscale"] is False
    assert np.array_equal(off, run(model, width=128, height=64)[0])


def test_the_stage_two_lora_is_on_for_stage_two_only(model):
    """A plain run after a two-stage one on the same cached model sees no adapter."""
    plain, _ = run(model, width=128, height=64)
    run(model, **UPSCALE)
    again, _ = run(model, width=128, height=64)
    assert np.array_equal(plain, again)


def test_a_users_lora_stays_on_in_both_stages_beside_the_stage_two_lora(model, tmp_path):
    from diffusers import LTX2Pipeline, LTX2VideoTransformer3DModel

    own = random_lora(LTX2VideoTransformer3DModel, model, tmp_path / "own", seed=5, pipeline_cls=LTX2Pipeline)
    frames, result = run(model, loras=[{"path": str(own)}], **UPSCALE)
    assert_same_as_stock(frames, result, *stock_two_stages(model, result, "distilled-lora.safetensors", own=own))


def test_previews_have_each_stages_size_and_progress_counts_both(model):
    previews, events = [], []
    run(model, on_preview=lambda step, img: previews.append(img.shape),
        on_progress=lambda e: events.append((e.stage, e.step, e.total)) if e.stage == "denoise" else None, **UPSCALE)
    steps = 4  # the tiny folder's default, then the 3 stage-2 steps
    assert previews == [(32, 64, 3)] * steps + [(64, 128, 3)] * 3
    assert max(total for _, _, total in events) == steps + 3


@pytest.mark.parametrize("at", [2, 4, 5], ids=["in-stage-1", "at-the-upscale", "in-stage-2"])
def test_a_cancelled_run_resumes_bitwise_across_the_stages(model, tmp_path, at):
    frames, base = run(model, **UPSCALE)
    spec = cancel_after(run, tmp_path / "ckpt.pt", at, model, **UPSCALE)
    resumed, result = run(model, checkpoint=spec, **UPSCALE)
    assert result.record["resumed_from_step"] == at
    assert np.array_equal(resumed, frames) and np.array_equal(result.audio.samples, base.audio.samples)


def test_periodic_checkpoints_resume_bitwise_in_stage_two(model, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, model, crash_at=6, **UPSCALE)


@pytest.mark.parametrize("fields,field,message", [
    ({"width": 96}, "width", "width: 96 px cannot be made at 1/2 and upscaled 2x (stage 1 needs a multiple of 32); "
                             "nearest valid: 64"),
    ({"height": 160}, "height", "nearest valid: 128"),
])
def test_sizes_stage_one_cannot_make_are_refused_with_the_nearest(model, fields, field, message):
    with pytest.raises(InvalidRequest) as e:
        run(model, **{**UPSCALE, **fields})
    assert e.value.field == field and message in str(e.value)


def test_a_folder_without_an_upsampler_or_its_lora_is_refused_before_loading(model, tmp_path):
    folder = with_defaults(model, tmp_path)
    shutil.rmtree(folder / "latent_upsampler")
    with pytest.raises(InvalidRequest) as e:
        run(folder, **UPSCALE)
    assert e.value.field == "extras.latent_upscale" and "has no latent_upsampler/ folder" in str(e.value)
    folder = with_defaults(model, tmp_path / "b")
    (folder / "distilled-lora.safetensors").unlink()
    with pytest.raises(InvalidRequest) as e:
        run(folder, **UPSCALE)
    assert "the second stage's LoRA distilled-lora.safetensors is not in" in str(e.value)
    assert run(folder, width=128, height=64)[0].shape == (9, 64, 128, 3)  # one stage still runs


def test_image_to_video_in_two_stages_matches_the_recipe_on_the_image_pipeline(model, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    frames, result = run(model, image=tmp_path / "in.png", **UPSCALE)
    ref_frames, ref_sound = stock_two_stages(model, result, "distilled-lora.safetensors", image=tmp_path / "in.png")
    assert_same_as_stock(frames, result, ref_frames, ref_sound)
    spec = cancel_after(run, tmp_path / "ckpt.pt", 5, model, image=tmp_path / "in.png", **UPSCALE)
    resumed, again = run(model, image=tmp_path / "in.png", checkpoint=spec, **UPSCALE)
    assert again.record["resumed_from_step"] == 5 and np.array_equal(resumed, frames)


def test_a_stage_two_lora_outside_the_folder_is_refused(model, tmp_path):
    folder = with_defaults(model, tmp_path, stage_2_lora="../elsewhere.safetensors")
    with pytest.raises(Exception) as e:
        run(folder, **UPSCALE)
    assert "outside the model folder" in str(e.value)


def test_the_planner_counts_the_upsampler(model, tmp_path):
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    from t2v.families import get_family

    m = get_family("ltx2").measure(model, 9, 64, 128, 2, False, 9)
    real = LTX2LatentUpsamplerModel.from_pretrained(model, subfolder="latent_upsampler")
    assert m["params"]["latent_upsampler"] == sum(p.numel() for p in real.parameters()) > 0
    assert "latent_upsampler" in m["roles"]["vae"]
    folder = with_defaults(model, tmp_path)
    shutil.rmtree(folder / "latent_upsampler")
    assert "latent_upsampler" not in get_family("ltx2").measure(folder, 9, 64, 128, 2, False, 9)["params"]


def test_the_cli_makes_a_two_stage_clip_that_replays(model, tmp_path):
    """``t2v generate --latent-upscale`` writes the output size with its record, and ``t2v replay --strict``
    makes the same frames again; a size stage 1 cannot make exits 2 naming it and writes nothing."""
    import av
    from typer.testing import CliRunner

    from t2v.cli import app

    def cli(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    r = cli("generate", "a drum and a bell", "--model", model, "--seed", "5", "--latent-upscale", "--width", "128",
            "--height", "64", "-o", tmp_path / "c.mp4", "-q")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "c.json").read_text())
    assert rec["extras"]["latent_upscale"] is True and (rec["width"], rec["height"]) == (128, 64)
    with av.open(str(tmp_path / "c.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == rec["num_frames"] and frames[0].shape == (64, 128, 3)
    again = cli("replay", tmp_path / "c.json", "--strict", "-o", tmp_path / "again.mp4")
    assert again.exit_code == 0, again.output
    bad = cli("generate", "a drum", "--model", model, "--latent-upscale", "--width", "96", "--height", "64",
              "-o", tmp_path / "bad.mp4", "-q")
    assert bad.exit_code == 2 and "width: 96 px cannot be made at 1/2" in bad.output and "nearest valid: 64" in bad.output
    assert not list(tmp_path.glob("bad*"))


def test_two_workers_run_a_two_stage_job_beside_a_plain_one_on_one_model(model, tmp_path):
    """As ``t2v serve --model M --workers 2`` runs them: the two-stage job's switch to the stage-2 LoRA waits
    for the plain job on the same loaded model, and each clip is the one a run alone makes; a size stage 1
    cannot make is refused with 422 before it is queued."""
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    body = {"prompt": "a drum and a bell", "num_frames": 9, "num_inference_steps": 4, "width": 128, "height": 64,
            "seed": 7}
    alone = {name: run(model, **{**body, **extra})[1].record["frames_sha256"]
             for name, extra in (("two", {"extras": {"latent_upscale": True}}), ("one", {}))}
    with TestClient(create_app(make_settings(tmp_path / "home", model), workers=2)) as client:
        ids = {name: client.post("/v1/videos", json={**body, **extra}).json()["id"]
               for name, extra in (("two", {"extras": {"latent_upscale": True}}), ("one", {}))}
        for name, job_id in ids.items():
            assert wait_for(client, job_id)["status"] == "succeeded"
            record = client.get(f"/v1/videos/{job_id}/metadata").json()
            assert record["frames_sha256"] == alone[name], name
        bad = client.post("/v1/videos", json={**body, "width": 96, "extras": {"latent_upscale": True}})
        assert bad.status_code == 422 and "nearest valid: 64" in bad.text


def test_first_and_last_frame_in_two_stages_match_the_recipe_on_the_condition_pipeline(model, images, tmp_path):
    first, last = images
    frames, result = run(model, image=first, last_image=str(last), **UPSCALE)
    assert_same_as_stock(frames, result, *stock_conditioned_two_stages(model, result, first=first, last=last))
    first_only, _ = run(model, image=first, **UPSCALE)
    assert np.abs(frames.astype(int) - first_only.astype(int)).max() > 2  # the last frame conditions the clip
    for at in (4, 5):  # at the upscale, and in stage 2 (its conditions made again, their noise not drawn)
        spec = cancel_after(run, tmp_path / f"ckpt-{at}.pt", at, model, image=first, last_image=str(last), **UPSCALE)
        resumed, again = run(model, image=first, last_image=str(last), checkpoint=spec, **UPSCALE)
        assert again.record["resumed_from_step"] == at and np.array_equal(resumed, frames)
        assert np.array_equal(again.audio.samples, result.audio.samples)


@pytest.mark.parametrize("first", [False, True], ids=["reference", "reference-and-first-frame"])
def test_an_ic_reference_in_two_stages_steers_stage_one_as_the_in_context_recipe(model, inputs, tmp_path, first):
    extra = {"image": inputs["image"]} if first else {}
    fields = dict(control_video=str(inputs["clip"]), loras=[{"path": str(inputs["lora"])}], **UPSCALE, **extra)
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img.shape), **fields)
    assert previews == [(32, 64, 3)] * 4 + [(64, 128, 3)] * 3
    assert_same_as_stock(frames, result, *stock_conditioned_two_stages(
        model, result, first=inputs["image"] if first else None, reference=inputs["clip"], ic=inputs["lora"]))
    plain, _ = run(model, **UPSCALE, **extra)
    assert np.abs(frames.astype(int) - plain.astype(int)).max() > 2  # the reference steers stage 1
    if not first:
        spec = cancel_after(run, tmp_path / "ckpt.pt", 5, model, **fields)
        resumed, again = run(model, checkpoint=spec, **fields)
        assert again.record["resumed_from_step"] == 5 and np.array_equal(resumed, frames)


def test_a_reference_stage_one_would_read_under_one_latent_is_refused_with_the_nearest_size(model, inputs):
    """An IC-LoRA that reads references at half size (its metadata) gets them at half of stage 1's size: at 64 px
    high that is 16 px, under the tiny VAE's 32 px latent (stock fails inside its resize)."""
    fields = dict(control_video=str(inputs["clip"]), loras=[{"path": str(inputs["half"])}])
    with pytest.raises(InvalidRequest) as e:
        run(model, **UPSCALE, **fields)
    assert e.value.field == "height" and "16 px, under the 32 px of one latent; nearest valid: 128" in str(e.value)
    with pytest.raises(InvalidRequest) as e:  # one stage: 1/2 of 32 px
        run(model, width=128, height=32, num_frames=9, **fields)
    assert e.value.field == "height" and "nearest valid: 64" in str(e.value)  # (64 runs: test_ltx2_ic_lora.py)
