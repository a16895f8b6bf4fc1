"""LTX-2 on a tiny random-weight model in the hub layout: the stock ``LTX2Pipeline``'s frames and sound for the same
seed (with and without each guidance term), the sound in the written files and the record, bitwise resume of
both streams, the request rules and the folder checks."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.sampling.vae import to_uint8
from tests.families.checks import (
    assert_checkpoint_is_the_images, assert_periodic_checkpoints_resume_bitwise, assert_two_stacked_loras_match_stock,
    cancel_after, random_lora, run)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("ltx2", tmp_path_factory.mktemp("ltx2") / "ltx2", seed=0)


def stock(model, result, prepare=None, image=None, **call):
    """The stock pipeline's frames (uint8) and sound for the request ``result`` ran, with the folder's STG block;
    with ``image``, LTX2ImageToVideoPipeline on the same folder."""
    import torch
    from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline
    from PIL import Image

    r = result.request
    defaults = json.loads((model / "t2v.json").read_text())["defaults"]
    pipe = (LTX2Pipeline if image is None else LTX2ImageToVideoPipeline).from_pretrained(model)
    if image is not None:
        call["image"] = Image.open(image).convert("RGB")
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:  # e.g. stacked adapters
        prepare(pipe)
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               frame_rate=r.fps, num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               spatio_temporal_guidance_blocks=defaults["stg_blocks"], generator=torch.Generator("cpu").manual_seed(r.seed),
               output_type="np", **call)
    return to_uint8(out.frames[0]), out.audio[0].float().numpy()


CASES = {
    "defaults": ({}, {}),  # classifier-free, spatio-temporal and modality guidance, rescale, audio guidance 7
    "no-guidance": ({"guidance_scale": 1.0, "extras": {"audio_guidance_scale": 1.0}},
                    {"audio_guidance_scale": 1.0, "stg_scale": 0.0, "modality_scale": 1.0}),
    "audio-scale": ({"extras": {"audio_guidance_scale": 2.5}, "num_inference_steps": 3}, {"audio_guidance_scale": 2.5}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_frames_and_sound_match_the_stock_pipeline(model, case):
    fields, call = CASES[case]
    if case == "no-guidance":  # the folder's defaults without the stg and modality terms, as the call above
        json_defaults = json.loads((model / "t2v.json").read_text())
        json_defaults["defaults"].update(stg_scale=0.0, modality_scale=1.0)
        nog = model.parent / "ltx2-no-guidance"
        if not nog.exists():
            import shutil

            shutil.copytree(model, nog)
            (nog / "t2v.json").write_text(json.dumps(json_defaults))
        target = nog
    else:
        target = model
    frames, result = run(target, **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1
    ref_frames, ref_sound = stock(target, result, **call)
    assert np.abs(frames.astype(int) - ref_frames.astype(int)).max() <= 1
    samples, rate = result.audio.samples, result.audio.sample_rate
    assert rate == 24000 and samples.shape[0] == 2
    n = min(samples.shape[1], ref_sound.shape[1])
    assert n > 0.8 * ref_sound.shape[1]
    np.testing.assert_allclose(samples[:, :n], np.clip(ref_sound[:, :n], -1, 1), atol=1e-5)
    assert np.abs(samples).max() > 0  # not silence


def test_the_cli_writes_the_sound_records_it_and_replays_it(model, tmp_path):
    """As a user runs it: ``t2v generate --model DIR --format mp4 --format gif``, then ``t2v replay --strict``."""
    import av
    from typer.testing import CliRunner

    from t2v.cli import app
    from t2v.export.audio import read_audio

    def cli(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    r = cli("generate", "a drum and a bell", "--model", model, "--seed", "5", "--format", "mp4", "--format", "gif",
            "-o", tmp_path / "c.mp4", "-q")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "c.json").read_text())
    assert rec["audio"]["sample_rate"] == 24000 and rec["audio"]["channels"] == 2
    assert rec["audio"]["source"] == "generated"
    assert rec["audio"]["length_s"] == pytest.approx(rec["num_frames"] / rec["fps"], abs=1e-3)
    assert [o["format"] for o in rec["outputs"]] == ["mp4", "gif", "wav"]
    with av.open(str(tmp_path / "c.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac" and c.streams.audio[0].channels == 2
        assert sum(1 for _ in c.decode(video=0)) == rec["num_frames"]
    wav = read_audio(tmp_path / "c.wav")
    assert wav.sample_rate == 24000 and wav.samples.shape == (2, round(rec["num_frames"] / rec["fps"] * 24000))
    shown = cli("inspect", tmp_path / "c.mp4")
    assert shown.exit_code == 0 and json.loads(shown.output)["audio"] == rec["audio"]
    again = cli("replay", tmp_path / "c.json", "-o", tmp_path / "again.mp4", "--strict")
    assert again.exit_code == 0 and "identical frames and sound" in again.output
    quiet = cli("generate", "a drum and a bell", "--model", model, "--seed", "5", "--format", "mp4", "--no-audio",
                "-o", tmp_path / "q.mp4", "-q")
    assert quiet.exit_code == 0, quiet.output
    assert "audio" not in json.loads((tmp_path / "q.json").read_text())
    with av.open(str(tmp_path / "q.mp4")) as c:
        assert len(c.streams.audio) == 0


def test_resume_after_cancel_is_bitwise_for_frames_and_sound(model, tmp_path):
    frames, base = run(model)
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, model)
    resumed_frames, resumed = run(model, checkpoint=spec)
    assert resumed.record["resumed_from_step"] == 2
    assert np.array_equal(resumed_frames, frames)
    assert np.array_equal(resumed.audio.samples, base.audio.samples)


def test_seed_changes_frames_and_sound(model):
    a = run(model)[1]
    b = run(model, seed=4)[1]
    assert not np.array_equal(a.frames, b.frames) and not np.array_equal(a.audio.samples, b.audio.samples)


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 80}, "width: 80 is not a multiple of 32"),
    ({"num_frames": 12}, "num_frames: 12 is not 8k+1, which this model needs; nearest valid: 9"),
    ({"extras": {"ar_step": 3}}, "extras.ar_step: the ltx2 family has no such setting"),
    ({"num_inference_steps": 1}, "scheduler needs at least 2 steps (it stretches its schedule to a terminal sigma); "
                                 "nearest valid: 2"),
])
def test_requests_it_cannot_run_are_refused_naming_the_field(model, tmp_path, fields, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        run(model, **fields)


def test_a_folder_naming_a_foreign_class_is_refused(model, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    index = json.loads((bad / "model_index.json").read_text())
    index["vocoder"] = ["os", "system"]
    (bad / "model_index.json").write_text(json.dumps(index))
    with pytest.raises((ModelUnavailable, InvalidRequest), match="vocoder|os"):
        run(bad)


def test_the_planner_measures_both_streams(model):
    from t2v.families import get_family

    m = get_family("ltx2").measure(model, 9, 64, 64, 2, False, 9)
    assert {"transformer", "audio_vae", "vocoder", "connectors"} <= set(m["params"])
    assert m["step_flops"] > 0 and m["acts"]["transformer"] > 0
    assert get_family("ltx2").guidance_passes(type("R", (), {"guidance_scale": 3.0, "extras": {}})()) == 4


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(model, tmp_path):
    from diffusers import LTX2Pipeline, LTX2VideoTransformer3DModel

    first, second = (random_lora(LTX2VideoTransformer3DModel, model, tmp_path / name, seed=seed, pipeline_cls=LTX2Pipeline)
                     for name, seed in (("first", 0), ("second", 1)))
    assert_two_stacked_loras_match_stock(run, lambda *a, **k: stock(*a, **k)[0], model, first, second)


def test_a_job_through_the_service_returns_a_file_with_its_sound(model, tmp_path):
    """As `t2v serve --model ./ltx2` runs it: the job's record carries the sound, and the mp4 the content route
    returns has the AAC stream beside the requested frames."""
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from t2v.ui import handlers as H
    from tests.api.conftest import make_settings, wait_for

    with TestClient(create_app(make_settings(tmp_path / "home", model))) as client:
        r = client.post("/v1/videos", json={"prompt": "a drum and a bell", "num_frames": 9, "width": 64, "height": 64,
                                            "num_inference_steps": 2, "seed": 7})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        record = client.get(f"/v1/videos/{job['id']}/metadata").json()
        assert record["family"] == "ltx2" and record["audio"]["sample_rate"] == 24000
        path = tmp_path / "out.mp4"
        path.write_bytes(client.get(f"/v1/videos/{job['id']}/content").content)
        with av.open(str(path)) as f:
            assert f.streams.audio[0].codec_context.name == "aac"
            assert sum(1 for _ in f.decode(video=0)) == 9
        bad = client.post("/v1/videos", json={"prompt": "x", "num_frames": 12, "width": 64, "height": 64})
        assert bad.status_code == 422 and "nearest valid: 9" in bad.text
        view = H.view(client.app.state.service, job["id"], None)  # what the web UI and the desktop show
        deadline = time.time() + 30
        while not view.finished and time.time() < deadline:
            view = H.view(client.app.state.service, job["id"], None)
        sound = dict(view.summary_parts())["Sound"]
        assert sound.startswith("24 kHz stereo · 0.38 s")


def test_previews_each_step_and_periodic_checkpoints_resume_bitwise(model, tmp_path):
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img))
    r = result.request
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, model, whole=frames, crash_at=3)


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0, "num_inference_steps": 3}], ids=["guided", "unguided"])
def test_image_to_video_matches_the_stock_pipeline(model, tmp_path, fields):
    """``--image`` on the same folder: LTX2ImageToVideoPipeline's frames and sound (the image re-compressed at
    CRF 33, its latent frame never stepped)."""
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:64]
    first = tmp_path / "first.png"
    Image.fromarray(np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)).save(first)
    frames, result = run(model, image=str(first), **fields)
    assert result.record["image_sha256"] and frames.shape == (9, 64, 64, 3)
    ref_frames, ref_sound = stock(model, result, image=first)
    assert np.abs(frames.astype(int) - ref_frames.astype(int)).max() <= 1
    n = min(result.audio.samples.shape[1], ref_sound.shape[1])
    np.testing.assert_allclose(result.audio.samples[:, :n], np.clip(ref_sound[:, :n], -1, 1), atol=1e-5)
    assert not np.array_equal(frames, run(model, **fields)[0])  # the image counts


def full_size(folder, device: str, dtype: str):
    """LTX-2 19B's transformer, video VAE, audio VAE, vocoder and connectors at full size with random weights, with
    a one-layer Gemma 3 of the real width: the denoising and decoding cost of the real model, built in seconds."""
    import torch
    from diffusers import (AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler,
                           LTX2VideoTransformer3DModel)
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from t2v.models.tiny import ltx2 as tiny
    from tests.families.checks import full_size_model

    tokenizer = tiny.tokenizer()
    with torch.device(device):
        torch.manual_seed(0)
        modules = {
            "transformer": ("diffusers", LTX2VideoTransformer3DModel()),  # 48 layers, 32 heads x 128, audio 32 x 64
            "vae": ("diffusers", AutoencoderKLLTX2Video(spatial_compression_ratio=32, temporal_compression_ratio=8)),
            "audio_vae": ("diffusers", AutoencoderKLLTX2Audio()),
            "vocoder": ("ltx2", LTX2Vocoder()),
            "connectors": ("ltx2", LTX2TextConnectors(text_proj_in_factor=2)),  # the one-layer Gemma's 2 states
            "text_encoder": ("transformers", Gemma3ForConditionalGeneration(Gemma3Config(
                text_config=dict(vocab_size=len(tokenizer), hidden_size=3840, intermediate_size=15360,
                                 num_hidden_layers=1, num_attention_heads=16, num_key_value_heads=8, head_dim=256),
                vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   image_size=28, patch_size=14), mm_tokens_per_image=4))),
        }
    scheduler = tiny.scheduler()
    return full_size_model(folder, device, dtype, family="ltx2", pipeline="LTX2Pipeline", modules=modules,
                           others={"tokenizer": ("transformers", tokenizer)}, scheduler=scheduler,
                           defaults={"stg_blocks": [29]})


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_steps(tmp_path, record_property):
    """Full-size LTX-2 (random bf16 weights) at 768x512, 121 frames with its sound: three steps (four passes each:
    guidance, STG, modality) and the decode of frames and sound."""
    from t2v.requests import GenerationRequest
    from tests.families.checks import time_on_gpu

    model = full_size(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt="a drum and a bell", negative_prompt="", width=768, height=512, num_frames=121,
                                num_inference_steps=3, guidance_scale=4.0, seed=0, scheduler="model", fps=24)
    out, figures = time_on_gpu("ltx2", model, request)
    assert out.frames.shape == (121, 512, 768, 3) and out.audio[1] == 24000
    record_property("ltx2", figures)
    print("ltx2 19B 512x768x121 bf16:", figures)


def test_low_memory_plan(model):
    base = run(model)[1]
    low = run(model, memory="low")[1]  # 2 latent frames at 64 px: nothing tiled, the same frames and sound
    assert np.array_equal(low.frames, base.frames) and np.array_equal(low.audio.samples, base.audio.samples)
    assert low.record["memory_plan"]["plan"] == "low"
    frames, result = run(model, memory="low", num_frames=17)  # 3 latent frames: decoded frame-wise
    assert frames.shape == (17, 64, 64, 3) and result.audio.length_s == pytest.approx(17 / 24, abs=1e-3)


def test_a_checkpoint_resumes_only_from_its_own_image(model, tmp_path):
    assert_checkpoint_is_the_images(run, tmp_path, model, at=2)
