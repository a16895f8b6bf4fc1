"""Longer videos on real models: ``seconds`` and ``t2v extend`` give exactly the frames asked for, the clip kept
and the seams as smooth as the clip's own motion (t2v-shapes), a prompt schedule changes what the video shows,
image-to-video continuation (tiny LTX-Video), replay, and a bitwise resume from the last segment done."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.sampling.base import CheckpointSpec
from t2v.errors import Cancelled
from t2v.export import decode_video
from t2v import generate
from t2v.requests import GenerationRequest
from tests.fixtures import one_thread  # noqa: F401  (autouse: one torch thread per module)

runner = CliRunner()
RIGHT = "a red circle moving right"


def red_x(frame: np.ndarray) -> float | None:
    """The x centroid of the red pixels (the red shape), None when there are none."""
    f = frame.astype(int)
    mask = (f[..., 0] > 110) & (f[..., 1] < 90) & (f[..., 2] < 90)
    return float(np.nonzero(mask)[1].mean()) if mask.sum() >= 4 else None


def colour(frame: np.ndarray) -> str:
    """The dominant channel of the bright pixels: r, g, b, or - for none."""
    f = frame.astype(int)
    mask = f.max(-1) > 100
    return "rgb"[int(np.argmax(f[mask].mean(0)))] if mask.any() else "-"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An 8-frame t2v-shapes clip of a red circle moving right, and its decoded frames."""
    out = tmp_path_factory.mktemp("clip") / "circle.mp4"
    generate(GenerationRequest(model="t2v-shapes", prompt=RIGHT, seed=1, crf=10), output=out)
    return out, decode_video(out)[0]


def test_extend_keeps_the_clip_adds_the_seconds_and_the_seams_follow_the_motion(clip, tmp_path):
    path, frames = clip
    out = tmp_path / "long.mp4"
    r = runner.invoke(app, ["extend", str(path), RIGHT, "--model", "t2v-shapes", "--seconds", "2", "--seed", "7",
                            "--crf", "10", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    video, fps = decode_video(out)
    assert video.shape == (8 + 16, 64, 64, 3) and fps == 8
    record = json.loads(out.with_suffix(".json").read_text())
    long = record["long"]
    assert long["frames"] == 24 and long["new_frames"] == 16 and long["continuation"] == "video"
    assert long["clip"]["frames"] == 8 and record["extend_sha256"] == long["clip"]["sha256"]
    assert [(s["kind"], s["frames"], s["seed"]) for s in long["segments"]] == [
        ("video", [4, 12], 7), ("video", [8, 16], 8), ("video", [12, 20], 9), ("video", [16, 24], 10)]
    # the clip's frames before the first overlap are the clip's (through two lossy encodes)
    assert np.abs(video[:4].astype(int) - frames[:4].astype(int)).mean() < 3
    # the seams are as smooth as the clip's own motion: no frame-to-frame jump at a join is much bigger
    step = np.abs(np.diff(video.astype(float), axis=0)).mean(axis=(1, 2, 3))
    own = np.median(np.abs(np.diff(frames.astype(float), axis=0)).mean(axis=(1, 2, 3)))
    seams = [s["frames"][0] + k for s in long["segments"] for k in range(long["overlap"] + 1)]
    assert max(step[i - 1] for i in seams if 0 < i < len(video)) < 2.0 * own, (step, own)
    # and the circle stays where the clip left it (near the right edge), not redrawn back at the start (x ~ 20)
    xs = [x for x in map(red_x, video[8:14]) if x is not None]
    assert red_x(frames[-1]) - red_x(frames[0]) > 20
    assert len(xs) >= 4 and min(xs) >= red_x(frames[-1]) - 8, ([red_x(f) for f in frames], [red_x(f) for f in video])


def test_a_prompt_schedule_changes_what_the_video_shows_from_its_frame():
    r = generate(GenerationRequest(model="t2v-shapes", prompt="shapes", seed=2, formats=(),
                                   prompt_schedule=["0: " + RIGHT, "16: a blue square moving up"]))
    assert len(r.frames) == 16 + 8
    assert [s["prompt"] for s in r.record["long"]["segments"]] == [RIGHT] * 3 + ["a blue square moving up"] * 2
    colours = "".join(colour(f) for f in r.frames)
    assert colours[:12] == "r" * 12 and colours[16:] == "b" * 8, colours


def test_the_schedule_flag_takes_several_values_as_the_issue_writes_it():
    from t2v.cli.extend import spread_schedule

    assert spread_schedule(["generate", "p", "--prompt-schedule", "0: a", "48: b", "--seconds", "4", "9: not"]) == [
        "generate", "p", "--prompt-schedule", "0: a", "--prompt-schedule", "48: b", "--seconds", "4", "9: not"]
    assert spread_schedule(["generate", "--prompt-schedule=0: a", " 12 : b", "--", "3: c"]) == [
        "generate", "--prompt-schedule=0: a", "--prompt-schedule", " 12 : b", "--", "3: c"]
    assert spread_schedule(["extend", "c.mp4", "p", "--prompt-schedule"]) == ["extend", "c.mp4", "p", "--prompt-schedule"]


def test_seconds_on_the_tiny_model_replays_to_the_same_frames(tiny_model, tmp_path, monkeypatch):
    """Through the console entry point, with the schedule written as in the issue (several values after one flag)."""
    from t2v.cli import main

    out = tmp_path / "long.mp4"
    monkeypatch.setattr("sys.argv", ["t2v", "generate", "a ball", "--model", str(tiny_model), "--seconds", "2.5",
                                     "--frames", "6", "--fps", "8", "--steps", "3", "--overlap", "2", "--seed", "4",
                                     "--prompt-schedule", "0: a ball", "10: a cube", "-o", str(out), "-q"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    video, _ = decode_video(out)
    assert len(video) == 20  # 2.5 s at 8 fps: 6 + 4 + 4 + 4 = 18 < 20 -> a fifth segment, trimmed
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["long"]["segments"]) == 5 and record["seconds"] == 2.5
    # segments start at frames 0, 4, 8, 12, 16 (new frames from 0, 6, 10, 14, 18): the cube from frame 10
    assert [s["prompt"] for s in record["long"]["segments"]] == ["a ball", "a ball", "a cube", "a cube", "a cube"]
    r = runner.invoke(app, ["replay", str(out.with_suffix(".json")), "-o", str(tmp_path / "again.mp4"), "--strict"])
    assert r.exit_code == 0 and "identical frames" in r.output, r.output


def test_a_long_run_cancelled_mid_way_resumes_after_its_last_segment_bitwise(tiny_model, tmp_path):
    request = GenerationRequest(model=str(tiny_model), prompt="a ball", seconds=3, num_frames=6, fps=8, seed=9,
                                num_inference_steps=3, formats=())
    whole = generate(request)
    spec = CheckpointSpec(path=tmp_path / "job.ckpt")
    seen: list[str] = []

    def cancel() -> bool:
        return any(m.startswith("segment 3/") for m in seen)

    with pytest.raises(Cancelled):
        generate(request, checkpoint=spec, should_cancel=cancel, on_progress=lambda e: seen.append(e.message))
    assert spec.path.is_file()
    again = generate(request, checkpoint=spec)
    assert again.record["long"]["resumed_from_segment"] == 2
    assert np.array_equal(again.frames, whole.frames)
    assert again.record["frames_sha256"] == whole.record["frames_sha256"]
    # a checkpoint of another request is not resumed
    other = generate(request.model_copy(update={"seed": 10}), checkpoint=spec)
    assert "resumed_from_segment" not in other.record["long"]


def test_image_to_video_models_continue_from_the_last_frame(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model("ltx", tmp_path_factory.mktemp("ltx") / "ltx", seed=0)
    r = generate(GenerationRequest(model=str(model), prompt="a ball", seconds=2, num_frames=9, fps=8, seed=3,
                                   num_inference_steps=2, width=32, height=32, formats=()))
    long = r.record["long"]
    assert long["continuation"] == "image" and long["overlap"] == 1
    assert [s["kind"] for s in long["segments"]] == ["text", "image"] and len(r.frames) == 16


def test_bad_clip_and_fields_exit_2_naming_them_before_any_model_loads(tmp_path):
    r = runner.invoke(app, ["extend", str(tmp_path / "nope.mp4"), "x", "--model", "t2v-shapes"])
    assert r.exit_code == 2 and "extend:" in r.output and "does not exist" in r.output
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    r = runner.invoke(app, ["extend", str(bad), "x", "--model", "t2v-shapes", "--width", "64", "--height", "64"])
    assert r.exit_code == 2 and "extend:" in r.output and "not a readable video" in r.output
    r = runner.invoke(app, ["generate", "x", "--model", "t2v-shapes", "--seconds", "3", "--overlap", "8"])
    assert r.exit_code == 2 and "overlap: 8 frames leave no new frame" in r.output and "nearest valid: 7" in r.output
    r = runner.invoke(app, ["generate", "x", "--model", "t2v-shapes", "--overlap", "2"])
    assert r.exit_code == 2 and "overlap: only longer videos take it" in r.output
    assert not list(tmp_path.glob("*.json"))
