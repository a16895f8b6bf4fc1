"""SkyReels-V2 diffusion forcing on a tiny random-weight model in the hub layout: the stock
``SkyReelsV2DiffusionForcingPipeline``'s frames for the same seed (a short clip, synchronous and asynchronous, and a
long clip made of overlapping windows with the prefix re-noised), bitwise resume inside and between windows,
and the settings it refuses."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from t2v.families import family_of_folder
from tests.families.checks import assert_checkpoint_is_the_images, assert_periodic_checkpoints_resume_bitwise, cancel_after, run, without_ftfy


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("skyreels-v2-df", tmp_path_factory.mktemp("skyreels-df") / "df", seed=0)


def stock(model, result, image=None, last_image=None, video=None):
    """The stock pipeline's frames for the request ``result`` ran, with its diffusion-forcing settings (the
    request's, else the folder's t2v.json) and torch's global generator seeded as t2v seeds it; with ``image``
    (and ``last_image``), the image-to-video pipeline on the same folder; with ``video`` (uint8 frames), the
    video-to-video pipeline continuing them."""

    import torch
    from diffusers import (SkyReelsV2DiffusionForcingImageToVideoPipeline, SkyReelsV2DiffusionForcingPipeline,
                           SkyReelsV2DiffusionForcingVideoToVideoPipeline)
    from diffusers.pipelines.skyreels_v2 import pipeline_skyreels_v2_diffusion_forcing as module
    from diffusers.pipelines.skyreels_v2 import pipeline_skyreels_v2_diffusion_forcing_i2v as i2v_module
    from diffusers.pipelines.skyreels_v2 import pipeline_skyreels_v2_diffusion_forcing_v2v as v2v_module
    from PIL import Image

    for m in (module, i2v_module, v2v_module):  # the stock pipelines call ftfy unguarded
        without_ftfy(m)
    r = result.record
    opts = {**json.loads((model / "t2v.json").read_text())["defaults"], **{k: v for k, v in r["extras"].items() if v is not None}}
    extra, cls = {}, SkyReelsV2DiffusionForcingPipeline
    if image is not None:
        extra, cls = {"image": Image.open(image).convert("RGB")}, SkyReelsV2DiffusionForcingImageToVideoPipeline
        if last_image is not None:
            extra["last_image"] = Image.open(last_image).convert("RGB")
    if video is not None:
        extra, cls = {"video": [Image.fromarray(f) for f in video]}, SkyReelsV2DiffusionForcingVideoToVideoPipeline
    pipe = cls.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(r["seed"])
    out = pipe(prompt=r["prompt"], negative_prompt=r["negative_prompt"], height=r["height"], width=r["width"],
               num_frames=r["num_frames"], num_inference_steps=r["num_inference_steps"], guidance_scale=r["guidance_scale"],
               fps=int(r["fps"]), generator=torch.Generator("cpu").manual_seed(r["seed"]), output_type="np", **extra,
               **{k: opts[k] for k in ("ar_step", "causal_block_size", "base_num_frames", "overlap_history",
                                       "addnoise_condition")})
    return to_uint8(out.frames[0])


CASES = {
    "short-async": {},
    "short-sync": {"extras": {"ar_step": 0}},
    "long-windows": {"num_frames": 17},  # 5 latent frames in 3-frame windows overlapping by 2: three windows
    "long-blocks": {"num_frames": 21, "extras": {"causal_block_size": 2, "ar_step": 2, "base_num_frames": 13}},
    # 7 latent frames in windows of 4 overlapping by 2: the last window is shorter than the base (3 frames)
    "long-short-last": {"num_frames": 25, "extras": {"base_num_frames": 13}},
    # the published models' blocks of 5 latent frames, asynchronous: one block, then windows of two
    "blocks-of-5": {"num_frames": 17, "extras": {"causal_block_size": 5, "ar_step": 5, "base_num_frames": 17}},
}


@pytest.mark.parametrize("case", list(CASES))
def test_frames_match_the_stock_pipeline(model, case):
    frames, result = run(model, **CASES[case])
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1


def test_the_prefix_noise_repeats_and_leaves_the_global_generator_alone(model):
    import torch

    state = torch.get_rng_state()
    a = run(model, num_frames=17)[0]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)
    assert np.array_equal(run(model, num_frames=17)[0], a)
    assert not np.array_equal(run(model, num_frames=17, extras={"addnoise_condition": 0.0})[0], a)


@pytest.mark.parametrize("at", [3, 6, 8])  # windows of 6, 4 and 4 rows: inside the first, at the second's start, inside it
def test_resume_after_cancel_is_bitwise(model, tmp_path, at):
    frames = run(model, num_frames=17)[0]
    spec = cancel_after(run, tmp_path / "ckpt.pt", at, model, num_frames=17)
    resumed, result = run(model, num_frames=17, checkpoint=spec)
    assert result.record["resumed_from_step"] == at and np.array_equal(resumed, frames)


@pytest.mark.parametrize(("fields", "message"), [
    ({"num_frames": 17, "extras": {"overlap_history": 9}}, "overlap_history: 9 frames leaves no new frames"),
    ({"num_frames": 10}, "num_frames: 10 is not 4k+1, which this model needs; nearest valid: 9"),
    ({"cache": "fbc"}, "cache: "),  # a step's active frames move along the window: no step cache applies
])
def test_settings_it_cannot_run_are_refused_naming_the_field(model, fields, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        run(model, **fields)


BLOCKS = {"causal_block_size": 5, "ar_step": 5, "base_num_frames": 97, "overlap_history": 17}


@pytest.mark.parametrize(("frames", "extras", "message"), [
    # shorter than one block: stock's schedule is empty (it fails with "stack expects a non-empty TensorList")
    (9, BLOCKS, "num_frames: 9 frames are 3 latent frames, fewer than one causal block of 5 (causal_block_size); "
                "nearest valid: 17"),
    # 7 latent frames: stock leaves the 2 past the one whole block as noise
    (25, BLOCKS, "num_frames: 25 frames are 7 latent frames, which leave frames outside whole causal blocks of 5 "
                 "(causal_block_size), and those would stay noise; nearest valid: 17"),
    # windows of 25 latent frames overlapping by 5: 31 latent frames end on a window of 11
    (121, BLOCKS, "num_frames: 121 frames are 31 latent frames, which leave frames outside whole causal blocks of 5 "
                  "(causal_block_size), and those would stay noise; nearest valid: 117"),
    (21, {**BLOCKS, "base_num_frames": 13, "overlap_history": 5},
     "base_num_frames: 13 frames are 4 latent frames, not whole causal blocks of 5 (causal_block_size); nearest "
     "valid: 17"),
], ids=["shorter-than-a-block", "part-block", "long-part-block", "base"])
def test_clips_that_are_not_whole_causal_blocks_are_refused_before_loading(model, monkeypatch, frames, extras, message):
    """A published DF model's defaults (blocks of 5) with a clip its schedule cannot cover: refused by the
    family's check on the folder, as a run plans it, before any weights load; the run refuses the same way."""
    from t2v.settings import Settings
    from t2v.models import loader
    from t2v.requests import GenerationRequest
    from t2v.runner.plan import plan_run

    def no_load(*a, **k):
        raise AssertionError("weights loaded")

    monkeypatch.setattr(loader, "load_model", no_load)
    request = GenerationRequest(prompt="x", model=str(model), width=64, height=32, num_frames=frames, extras=extras)
    with pytest.raises(InvalidRequest, match=re.escape(message)) as e:
        plan_run(request, Settings(), memory=True)
    assert e.value.field == message.split(":")[0]


def test_seconds_round_up_to_whole_causal_blocks(model):
    """``seconds`` with blocks of 2 latent frames: 0.75 s at 16 fps is 13 frames (4 latent), whole blocks; 1 s is
    17 frames (5 latent), rounded up to 21 (6), every frame denoised."""
    extras = {"causal_block_size": 2, "ar_step": 2, "base_num_frames": 13, "overlap_history": 5}
    frames, result = run(model, seconds=1.0, fps=16, extras=extras)
    assert result.record["num_frames"] == 21 and frames.shape[0] == 21
    assert frames[-4:].std() > 1 and np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1


def test_the_cli_takes_the_long_video_flags(model, tmp_path):
    import av
    from typer.testing import CliRunner

    from t2v.cli import app

    out = tmp_path / "long.mp4"
    r = CliRunner().invoke(app, ["generate", "a red fox running", "--model", str(model), "--frames", "17",
                                 "--overlap-history", "5", "--ar-step", "1", "--addnoise-condition", "20", "-o", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["family"] == "skyreels-v2-df" and record["extras"]["overlap_history"] == 5
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 17


def test_seconds_runs_natively_in_one_run_and_replays(model, tmp_path):
    """``--seconds`` on a diffusion-forcing model: one run (no segments), the frames rounded up to 4k+1, recorded
    as made by diffusion forcing, and the record replays to the same frames."""
    from typer.testing import CliRunner

    from t2v.cli import app

    out = tmp_path / "long.mp4"
    r = CliRunner().invoke(app, ["generate", "a red fox running", "--model", str(model), "--seconds", "1.2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "by diffusion forcing" in r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["num_frames"] == 21 and record["long"] == {"method": "diffusion forcing", "seconds": 1.2, "frames": 21}
    import av

    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 21
    again = CliRunner().invoke(app, ["replay", str(out.with_suffix(".json")), "-o", str(tmp_path / "again.mp4"), "--strict"])
    assert again.exit_code == 0 and "identical" in again.output, again.output
    bad = CliRunner().invoke(app, ["generate", "x", "--model", str(model), "--seconds", "2", "--overlap", "2"])
    assert bad.exit_code == 2 and "overlap" in bad.output and "diffusion forcing" in bad.output


def test_previews_and_periodic_checkpoints_across_windows(model, tmp_path):
    previews = []
    frames, _ = run(model, num_frames=17, on_preview=lambda step, img: previews.append(img))
    assert len(previews) == 14  # windows of 6, 4 and 4 timestep-matrix rows
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, model, whole=frames, crash_at=7, num_frames=17)


@pytest.mark.parametrize("frames", [9, 17], ids=["short", "long"])
def test_image_to_video_matches_the_stock_pipeline(model, tmp_path, frames):
    """``--image`` on the same folder: the image's latent frame starts the first window, as
    SkyReelsV2DiffusionForcingImageToVideoPipeline does."""
    from PIL import Image

    yy, xx = np.mgrid[0:32, 0:64]
    first = tmp_path / "first.png"
    Image.fromarray(np.stack([xx * 4, yy * 8, (xx + yy) * 2], -1).astype(np.uint8)).save(first)
    ours, result = run(model, image=str(first), num_frames=frames)
    assert ours.shape[0] == frames and result.record["image_sha256"]
    assert np.abs(ours.astype(int) - stock(model, result, image=first).astype(int)).max() <= 1
    assert not np.array_equal(ours, run(model, num_frames=frames)[0])


def full_size(folder, device: str, dtype: str):
    """SkyReels-V2 DF 1.3B's transformer (Wan 2.1 1.3B's layout with the fps embedding) and the Wan VAE at full size
    with random weights, with a one-layer UMT5 of the real width, built in seconds."""
    import torch
    from diffusers import AutoencoderKLWan, SkyReelsV2Transformer3DModel, UniPCMultistepScheduler
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    from tests.families.checks import full_size_model

    tokenizer = ByT5Tokenizer(model_max_length=512)
    with torch.device(device):
        torch.manual_seed(0)
        modules = {
            "transformer": ("diffusers", SkyReelsV2Transformer3DModel(
                num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16, text_dim=4096,
                ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                inject_sample_info=True)),
            "vae": ("diffusers", AutoencoderKLWan()),
            "text_encoder": ("transformers", UMT5EncoderModel(UMT5Config(
                vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240, num_heads=64, num_layers=1,
                feed_forward_proj="gated-gelu"))),
        }
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0)
    return full_size_model(folder, device, dtype, family="skyreels-v2-df", pipeline="SkyReelsV2DiffusionForcingPipeline",
                           modules=modules, others={"tokenizer": ("transformers", tokenizer)}, scheduler=scheduler,
                           defaults={"ar_step": 5, "causal_block_size": 5, "base_num_frames": 97, "overlap_history": 17,
                                     "addnoise_condition": 20.0})


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_long_video(tmp_path, record_property):
    """Full-size SkyReels-V2 DF 1.3B (random bf16 weights) at 544x960: 137 frames in two 97-frame windows, three
    steps each, asynchronous in blocks of 5."""
    from t2v.requests import GenerationRequest
    from tests.families.checks import time_on_gpu

    model = full_size(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt="a red fox in snow", negative_prompt="", width=960, height=544, num_frames=137,
                                num_inference_steps=3, guidance_scale=6.0, seed=0, scheduler="model", fps=24)
    out, figures = time_on_gpu("skyreels-v2-df", model, request)
    assert out.frames.shape == (137, 544, 960, 3)
    record_property("skyreels_v2_df", figures)
    print("skyreels-v2 DF 1.3B 544x960x137 bf16:", figures)


@pytest.fixture(scope="module")
def clip(model, tmp_path_factory):
    """A 9-frame clip of the tiny model's (mp4), and its frames as t2v decodes and fits them."""
    from t2v.inputs import load_video

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    run(model, prompt="a red fox running", num_frames=9, output=str(path), formats=("mp4",))
    return path, load_video(path, width=64, height=32, num_frames=None).frames


EXTEND = {
    "one-window": {"seconds": 0.5, "extras": {"base_num_frames": 17}},  # 2 latent frames of clip, 2 new
    "windows": {"seconds": 0.75},  # 2 + 3 latent frames in 3-frame windows: three windows
    "blocks": {"num_frames": 21, "extras": {"causal_block_size": 2, "ar_step": 2, "base_num_frames": 13,
                                            "overlap_history": 5}},
}


@pytest.mark.parametrize("case", list(EXTEND))
def test_extend_matches_the_stock_video_to_video_pipeline(model, clip, case):
    """Extending a clip: the clip, then the new frames, which are stock's past its re-decoded overlap
    (SkyReelsV2DiffusionForcingVideoToVideoPipeline returns the clip and every decoded latent frame)."""
    path, frames = clip
    ours, result = run(model, prompt="the fox turns around", extend=str(path), fps=16, **EXTEND[case])
    record = result.record
    overlap = record["extras"]["overlap_history"]
    redone = ((overlap - 1) // 4) * 4 + 1
    made = stock(model, result, video=frames)
    assert made.shape[0] == len(frames) + record["num_frames"]
    assert np.array_equal(ours[:len(frames)], frames)
    new = ours[len(frames):]
    assert len(new) == record["num_frames"] - redone == record["long"]["new_frames"] and new.std() > 1
    assert np.abs(new.astype(int) - made[len(frames) + redone:].astype(int)).max() <= 1
    assert record["long"]["clip"]["frames"] == 9 and record["extend_sha256"] == record["long"]["clip"]["sha256"]


def test_extend_resumes_bitwise_and_its_checkpoint_is_the_clips_alone(model, clip, tmp_path):
    path, _ = clip
    fields = {"prompt": "the fox turns around", "extend": str(path), "fps": 16, "seconds": 0.75}
    whole = run(model, **fields)[0]
    spec = cancel_after(run, tmp_path / "ckpt.pt", 5, model, **fields)
    other = tmp_path / "other.mp4"
    run(model, prompt="a blue bird", num_frames=9, output=str(other), formats=("mp4",))
    result = run(model, **{**fields, "extend": str(other)}, checkpoint=spec)[1]  # another clip: not resumed
    assert result.record.get("resumed_from_step") is None
    resumed, result = run(model, **fields, checkpoint=spec)
    assert result.record["resumed_from_step"] == 5 and np.array_equal(resumed, whole)


def test_t2v_extend_on_the_cli_writes_the_clip_and_its_continuation_and_replays(model, clip, tmp_path):
    import av
    from typer.testing import CliRunner

    from t2v.cli import app

    path, frames = clip
    out = tmp_path / "more.mp4"
    r = CliRunner().invoke(app, ["extend", str(path), "the fox turns around", "--model", str(model), "--seconds", "0.5",
                                 "--overlap-history", "5", "--addnoise-condition", "10", "-o", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["long"]["method"] == "diffusion forcing" and record["long"]["new_frames"] == 8
    assert record["extras"]["addnoise_condition"] == 10
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 17
    again = CliRunner().invoke(app, ["replay", str(out.with_suffix(".json")), "-o", str(tmp_path / "again.mp4"), "--strict"])
    assert again.exit_code == 0 and "identical" in again.output, again.output


@pytest.mark.parametrize(("fields", "message"), [
    ({"extras": {"overlap_history": 13}}, "extend: the clip has 9 frames, fewer than overlap_history (13) that start "
                                          "the continuation; nearest valid: overlap_history 9"),
    ({"num_frames": 5}, "num_frames: 5 frames, counting the clip's last overlap_history (5), leave no new frame; "
                        "nearest valid: 9"),
    ({"seconds": 1, "extras": {"causal_block_size": 2, "ar_step": 2, "overlap_history": 9}},
     "overlap_history: 9 frames are 3 latent frames, not whole causal blocks of 2; nearest valid: 5"),
    ({"seconds": 1, "prompt_schedule": ((0, "a"), (8, "b"))}, "prompt_schedule: "),
    ({"seconds": 1, "image": "first.png"}, "image: "),
])
def test_extend_settings_it_cannot_run_are_refused_naming_the_field(model, clip, tmp_path, fields, message):
    from PIL import Image

    Image.new("RGB", (64, 32), (200, 30, 30)).save(tmp_path / "first.png")
    if "image" in fields:
        fields = {**fields, "image": str(tmp_path / "first.png")}
    with pytest.raises(InvalidRequest, match=re.escape(message)) as e:
        run(model, extend=str(clip[0]), fps=16, output=str(tmp_path / "x.mp4"), formats=("mp4",), **fields)
    assert e.value.field == message.split(":")[0] and not list(tmp_path.glob("x.*"))


def test_first_last_frame_matches_the_stock_pipeline(model, tmp_path):
    """``--image`` and ``--last-image``: the last image's latent frame is held at the end of the window, as
    SkyReelsV2DiffusionForcingImageToVideoPipeline runs it with ``last_image``."""
    from PIL import Image

    yy, xx = np.mgrid[0:32, 0:64]
    first, last = tmp_path / "first.png", tmp_path / "last.png"
    Image.fromarray(np.stack([xx * 4, yy * 8, (xx + yy) * 2], -1).astype(np.uint8)).save(first)
    Image.fromarray(np.stack([255 - xx * 4, (xx + yy) * 2, yy * 8], -1).astype(np.uint8)).save(last)
    ours, result = run(model, image=str(first), last_image=str(last), num_frames=9)
    assert ours.shape[0] == 9 and result.record["last_image_sha256"]
    assert np.abs(ours.astype(int) - stock(model, result, image=first, last_image=last).astype(int)).max() <= 1
    assert not np.array_equal(ours, run(model, image=str(first), num_frames=9)[0])
    with pytest.raises(InvalidRequest, match=re.escape("last_image: ") + ".*one window.*nearest valid: num_frames 9"):
        run(model, image=str(first), last_image=str(last), num_frames=17)


def test_a_checkpoint_resumes_only_from_its_own_image(model, tmp_path):
    assert_checkpoint_is_the_images(run, tmp_path, model, at=2, width=64, height=32)


def test_extend_through_the_service_with_an_uploaded_clip(model, clip, tmp_path):
    """As `t2v serve --model ./df` runs it: the clip is uploaded as an asset, the job extends it by diffusion
    forcing, and the content route returns the clip and the new frames; a path instead of an asset id is 422."""
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    path, frames = clip
    with TestClient(create_app(make_settings(tmp_path / "home", model))) as client:
        asset = client.post("/v1/assets", files={"file": ("clip.mp4", path.read_bytes(), "video/mp4")})
        assert asset.status_code in (200, 201), asset.text
        r = client.post("/v1/videos", json={"prompt": "the fox turns around", "extend": asset.json()["id"],
                                            "seconds": 0.5, "fps": 16, "width": 64, "height": 32, "seed": 4})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        record = client.get(f"/v1/videos/{job['id']}/metadata").json()
        assert record["long"]["method"] == "diffusion forcing" and record["long"]["new_frames"] == 8
        out = tmp_path / "out.mp4"
        out.write_bytes(client.get(f"/v1/videos/{job['id']}/content").content)
        with av.open(str(out)) as f:
            assert sum(1 for _ in f.decode(video=0)) == len(frames) + 8
        bad = client.post("/v1/videos", json={"prompt": "x", "extend": str(path), "seconds": 0.5, "fps": 16,
                                              "width": 64, "height": 32})
        assert bad.status_code == 422 and "extend" in bad.text


def test_the_planner_measures_the_denoiser_at_one_window(model):
    """A long clip is denoised one ``base_num_frames`` window at a time: the planner's denoiser figure is one
    window's, whatever the clip's length (a 40 s clip is not planned as one 961-frame pass), and its decode the
    whole clip's."""
    from t2v.planner import memory
    from t2v.requests import GenerationRequest

    def planned(frames: int, base: int, fn=memory.predict):
        req = GenerationRequest(prompt="x", width=64, height=32, num_frames=frames, guidance_scale=5.0,
                                extras={"base_num_frames": base})
        return fn(model, req, family=family_of_folder(model), plan="speed", device="cuda", dtype="bf16",
                  measure_speed=False, defaults={"causal_block_size": 5})

    window, long = planned(17, 17), planned(65, 17)
    assert long.activation_bytes["transformer"] == window.activation_bytes["transformer"]
    assert long.flops_per_step == window.flops_per_step and long.activation_bytes["vae"] >= window.activation_bytes["vae"]
    assert planned(65, 65).activation_bytes["transformer"] > 2 * window.activation_bytes["transformer"]
    est = planned(65, 17, memory.estimate)
    assert window.activation_bytes["transformer"] <= est.activation_bytes["transformer"] < planned(65, 65, memory.estimate).activation_bytes["transformer"]


@pytest.mark.own_dry_runs  # it measures again with the family code changed
def test_the_planner_counts_the_block_mask_of_the_window(model, tmp_path, monkeypatch):
    """The published models run in causal blocks (``causal_block_size`` 5), for which the transformer holds a mask
    over every pair of the window's tokens: the dry run counts it (one byte per pair). On an H200 the full-size
    model in blocks of 5 at 960x544 peaked at 14.3 GiB; the planner said 10.6 GiB without the mask, 14.8 with it."""
    from t2v.families.skyreels import SkyReelsV2DFFamily
    from t2v.planner import dryruns, memory
    from t2v.requests import GenerationRequest

    monkeypatch.setenv("T2V_HOME", str(tmp_path))
    req = GenerationRequest(prompt="x", width=64, height=32, num_frames=17, guidance_scale=5.0)

    def transformer_acts() -> int:
        dryruns.forget_memo()
        memory._dry_run.cache_clear()
        (tmp_path / "cache" / dryruns.CACHE_NAME).unlink(missing_ok=True)
        return memory.predict(model, req, family=family_of_folder(model), plan="speed", device="cuda", dtype="bf16",
                              measure_speed=False).activation_bytes["transformer"]

    masked = transformer_acts()
    real = SkyReelsV2DFFamily.meta_timestep

    def without_blocks(self, path, frames, tokens, meta, transformer):
        out = real(self, path, frames, tokens, meta, transformer)
        transformer.register_to_config(num_frame_per_block=1)
        return out

    monkeypatch.setattr(SkyReelsV2DFFamily, "meta_timestep", without_blocks)
    tokens = 5 * 2 * 4  # 17 frames at 64x32: 5 latent frames of 2 x 4 patches
    assert masked - transformer_acts() >= tokens * tokens
