"""The post-processing stage in the runner and on existing files: frame counts, sizes and fps of the decoded
outputs, the record's steps, replay, the CLI's ``t2v post`` and its bad input, and the API's ``post`` block."""

from __future__ import annotations

import json

import pytest

from t2v import generate
from t2v.export import decode_video, read_embedded
from t2v.requests import GenerationRequest

from tests.forkserver import run_t2v

SMALL = dict(num_frames=4, width=32, height=32, num_inference_steps=2, fps=8, seed=5)


def run(tiny_model, tmp_path, name, **post):
    request = GenerationRequest.create(prompt="a red square moving right", model=str(tiny_model), **SMALL,
                                       post=post or None)
    return generate(request, output=tmp_path / f"{name}.mp4")


def t2v(*args, env=None):
    return run_t2v(args, env=env)


def test_generate_interpolates_and_upscales_and_records_each_step(tiny_model, tmp_path):
    plain = run(tiny_model, tmp_path, "plain")
    result = run(tiny_model, tmp_path, "post", deflicker=True, interpolate=2, upscale=2)
    frames, fps = decode_video(tmp_path / "post.mp4")
    assert frames.shape == (7, 64, 64, 3) and fps == pytest.approx(16)  # (4 - 1) * 2 + 1 frames, 2x the side
    rec = read_embedded(tmp_path / "post.mp4")
    assert rec["frames_sha256"] == plain.record["frames_sha256"], "sampling is untouched: post runs after it"
    assert rec["post"]["interpolate"] == 2 and rec["fps"] == 8  # the request as asked, replayable
    steps = rec["postprocess"]["steps"]
    assert [s["name"] for s in steps] == ["deflicker", "interpolate", "upscale"]
    assert steps[1]["factor"] == 2 and steps[1]["method"] in ("flow", "minterpolate", "blend")
    assert steps[2]["factor"] == 2 and steps[2]["upscaler"] == "lanczos" and (steps[2]["width"], steps[2]["height"]) == (64, 64)
    assert all(s["seconds"] >= 0 for s in steps) and rec["timings"]["post_s"] > 0
    assert (rec["postprocess"]["num_frames"], rec["postprocess"]["fps"]) == (7, 16)
    assert result.frames.shape == (7, 64, 64, 3)


def test_target_fps_and_replay_makes_every_step_again(tiny_model, tmp_path):
    # Both through the CLI: the same torch thread count on both sides (this process's may have been changed
    # by other tests, and the sampled frames depend on it at float precision).
    r = t2v("generate", "a red square moving right", "-m", tiny_model, "--frames", 4, "--width", 32, "--height", 32,
            "--steps", 2, "--fps", 8, "--seed", 5, "--target-fps", 24, "-o", tmp_path / "clip.mp4")
    assert r.returncode == 0, r.stderr
    frames, fps = decode_video(tmp_path / "clip.mp4")
    assert len(frames) == 10 and fps == pytest.approx(24)
    r = t2v("replay", tmp_path / "clip.json", "-o", tmp_path / "again.mp4", "--model", tiny_model, "--strict")
    assert r.returncode == 0 and "identical frames" in r.stdout, r.stdout + r.stderr
    assert json.loads((tmp_path / "again.json").read_text())["postprocess"]["frames_sha256"] == \
        read_embedded(tmp_path / "clip.mp4")["postprocess"]["frames_sha256"]


def test_bad_post_options_name_the_field_and_write_nothing(tiny_model, tmp_path):
    for flags, message in ((["--target-fps", "20"], "post.target_fps: 20 is not a whole multiple of the clip's 8 fps; "
                                                    "nearest: 16 or 24"),
                           (["--upscale", "3"], "post.upscale: must be 2 or 4, got 3; nearest valid: 2"),
                           (["--interpolate", "9"], "post.interpolate"),
                           (["--upscale", "2", "--upscaler", str(tmp_path / "missing.pth")], "post.upscaler")):
        r = t2v("generate", "x", "-m", tiny_model, "--frames", 4, "--width", 32, "--height", 32, "--steps", 1,
                "--fps", 8, "-o", tmp_path / "bad.mp4", *flags)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (flags, r.stderr)
    assert not list(tmp_path.glob("bad*"))


def test_t2v_post_keeps_the_record_and_appends_the_steps(tiny_model, tmp_path):
    first = run(tiny_model, tmp_path, "clip")
    r = t2v("post", tmp_path / "clip.mp4", "--interpolate", 3, "-o", tmp_path / "smooth.mp4")
    assert r.returncode == 0, r.stderr
    frames, fps = decode_video(tmp_path / "smooth.mp4")
    assert frames.shape == (10, 32, 32, 3) and fps == pytest.approx(24)
    rec = read_embedded(tmp_path / "smooth.mp4")
    assert (rec["prompt"], rec["seed"], rec["frames_sha256"]) == (first.record["prompt"], 5, first.record["frames_sha256"])
    assert [s["name"] for s in rec["postprocess"]["steps"]] == ["interpolate"]
    assert rec["post_history"][0]["post"]["interpolate"] == 3 and len(rec["post_history"][0]["input_sha256"]) == 64
    assert json.loads((tmp_path / "smooth.json").read_text())["postprocess"] == rec["postprocess"]

    r = t2v("post", tmp_path / "smooth.mp4", "--upscale", 2, "--deflicker", "-o", tmp_path / "big.webm")
    assert r.returncode == 0, r.stderr
    frames, fps = decode_video(tmp_path / "big.webm")
    assert frames.shape == (10, 64, 64, 3) and fps == pytest.approx(24)
    rec = read_embedded(tmp_path / "big.webm")
    assert [s["name"] for s in rec["postprocess"]["steps"]] == ["interpolate", "deflicker", "upscale"]
    assert len(rec["post_history"]) == 2


def test_t2v_post_bad_input(tiny_model, tmp_path):
    run(tiny_model, tmp_path, "clip")
    (tmp_path / "notes.txt").write_text("not a video")
    cases = (([tmp_path / "clip.mp4", "-o", tmp_path / "o.mp4"], "post: nothing to do"),
             ([tmp_path / "nope.mp4", "--interpolate", 2, "-o", tmp_path / "o.mp4"], "clip: "),
             ([tmp_path / "notes.txt", "--interpolate", 2, "-o", tmp_path / "o.mp4"], "clip: "),
             ([tmp_path / "clip.mp4", "--interpolate", 2, "-o", tmp_path / "o.avi"], "must end in .mp4, .webm or .gif"),
             ([tmp_path / "clip.mp4", "--interpolate", 2, "-o", tmp_path / "clip.mp4"], "is the input"),
             ([tmp_path / "clip.mp4", "--target-fps", 12, "-o", tmp_path / "o.mp4"], "nearest: 16"))
    for args, message in cases:
        r = t2v("post", *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.json").exists()


def test_api_post_block_and_upscaler_paths(tiny_model, tmp_path):
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    settings = make_settings(tmp_path / "home", tiny_model, model_roots=str(tmp_path / "roots"))
    outside = tmp_path / "weights.pth"
    outside.write_bytes(b"not read")
    with TestClient(create_app(settings)) as client:
        body = {"prompt": "a red square", **{k: v for k, v in SMALL.items()}, "post": {"interpolate": 2, "upscale": 2}}
        r = client.post("/v1/videos", json=body)
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
        assert job["status"] == "succeeded", job["error"]
        content = client.get(f"/v1/videos/{job['id']}/content")
        (tmp_path / "got.mp4").write_bytes(content.content)
        frames, fps = decode_video(tmp_path / "got.mp4")
        assert frames.shape == (7, 64, 64, 3) and fps == pytest.approx(16)
        assert [s["name"] for s in job["result"]["metadata"]["postprocess"]["steps"]] == ["interpolate", "upscale"]

        for post, field in (({"upscale": 2, "upscaler": str(outside)}, "post.upscaler"),  # never read from the API
                            ({"target_fps": 20}, "post.target_fps"), ({"upscale": 8}, "post.upscale"),
                            ({"interpolate": 2, "shutter": 1}, "post.shutter")):
            r = client.post("/v1/videos", json={**body, "post": post})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-2:] == field.split("."), (post, r.text)
        r = client.post("/v1/videos", json={**body, "post": {"upscale": 2, "upscaler": str(outside)}})
        assert "T2V_MODEL_ROOTS" in r.text


def test_a_sequence_is_post_processed_too_and_an_image_request_refuses_it(tiny_sd_model, tmp_path):
    from t2v.errors import InvalidRequest
    from t2v import generate as run_request
    from t2v.requests import ImageRequest, SequenceRequest

    req = SequenceRequest.create(keyframes=["0: a red circle", "2: a blue square"], method="prompt-interp",
                                 model=str(tiny_sd_model), width=32, height=32, num_inference_steps=2, seed=0, fps=4,
                                 post={"interpolate": 2, "upscale": 2})
    run_request(req, output=tmp_path / "seq.mp4")
    frames, fps = decode_video(tmp_path / "seq.mp4")
    assert frames.shape == (5, 64, 64, 3) and fps == pytest.approx(8)
    assert [s["name"] for s in read_embedded(tmp_path / "seq.mp4")["postprocess"]["steps"]] == ["interpolate", "upscale"]
    with pytest.raises(InvalidRequest) as e:
        run_request(ImageRequest.create(prompt="a red circle", model=str(tiny_sd_model), width=32, height=32,
                                        num_inference_steps=1, post={"upscale": 2}), output=tmp_path / "img.png")
    assert e.value.field == "post" and not list(tmp_path.glob("img*"))
