"""Replay of a post chain (generate -> t2v post -> t2v post): the original made again, then every recorded post
step, compared by frame hash after each; a tampered step is named, with exit 1 under --strict."""

from __future__ import annotations

import json

import pytest

from t2v.export import decode_video, frames_sha256, read_embedded

from tests.forkserver import run_t2v


def t2v(*args):
    r = run_t2v(args)
    r.stdout = " ".join(r.stdout.split())  # rich wraps at 80 columns
    return r


@pytest.fixture
def chain(tiny_model, tmp_path):
    """clip.mp4 (generated) -> soft.mp4 (deflicker) -> smooth.mp4 (interpolate 2, blend); all through the CLI
    so the torch thread count is the same as the replay's."""
    r = t2v("generate", "a red square moving right", "-m", tiny_model, "--frames", 4, "--width", 32, "--height", 32,
            "--steps", 2, "--fps", 8, "--seed", 5, "-o", tmp_path / "clip.mp4")
    assert r.returncode == 0, r.stderr
    r = t2v("post", tmp_path / "clip.mp4", "--deflicker", "-o", tmp_path / "soft.mp4", "-q")
    assert r.returncode == 0, r.stderr
    r = t2v("post", tmp_path / "soft.mp4", "--interpolate", 2, "--interpolation", "blend", "-o",
            tmp_path / "smooth.mp4", "-q")
    assert r.returncode == 0, r.stderr
    return tmp_path / "smooth.mp4"


def test_each_post_step_records_its_frame_hashes(chain, tmp_path):
    history = read_embedded(chain)["post_history"]
    assert [h["input"] for h in history] == ["clip.mp4", "soft.mp4"]
    soft, _ = decode_video(tmp_path / "soft.mp4")
    assert history[1]["input_frames_sha256"] == frames_sha256(soft)  # what step 2 read: step 1's file, decoded
    assert history[0]["frames_sha256"] != history[0]["input_frames_sha256"]  # deflicker changed the frames
    assert history[1]["frames_sha256"] == read_embedded(chain)["postprocess"]["frames_sha256"]
    assert history[1]["crf"] is None and history[1]["post"]["interpolation"] == "blend"


def test_replay_makes_every_step_again_and_names_the_one_that_differs(chain, tiny_model, tmp_path):
    r = t2v("replay", chain, "-o", tmp_path / "again.mp4", "--model", tiny_model, "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "step 1/2 deflicker: identical" in r.stdout and "step 2/2 interpolate 2x (blend): identical" in r.stdout
    assert "identical frames" in r.stdout and "all 2 post step(s)" in r.stdout
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["postprocess"]["frames_sha256"] == read_embedded(chain)["postprocess"]["frames_sha256"]
    assert [h["frames_sha256"] for h in again["post_history"]] == \
        [h["frames_sha256"] for h in read_embedded(chain)["post_history"]]
    assert len(decode_video(tmp_path / "again.mp4")[0]) == 7
    assert sorted(p.name for p in tmp_path.glob("again*")) == ["again.json", "again.mp4"]  # no intermediates

    record = json.loads((tmp_path / "smooth.json").read_text())
    record["post_history"][1]["post"]["interpolation"] = "flow"  # tampered: not what made smooth.mp4
    (tmp_path / "tampered.json").write_text(json.dumps(record))
    r = t2v("replay", tmp_path / "tampered.json", "-o", tmp_path / "tampered-again.mp4", "--model", tiny_model,
            "--strict")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "step 1/2 deflicker: identical" in r.stdout and "step 2/2 interpolate 2x (flow): differs" in r.stdout
    assert "frames differ from the record at step 2 of 2 (interpolate 2x (flow))" in r.stdout
    assert "Traceback" not in r.stderr

    r = t2v("replay", tmp_path / "tampered.json", "-o", tmp_path / "lenient.mp4", "--model", tiny_model)
    assert r.returncode == 0 and "frames differ" in r.stdout  # without --strict: reported, exit 0


def test_an_old_record_without_step_hashes_checks_the_last_step(chain, tiny_model, tmp_path):
    record = json.loads((tmp_path / "smooth.json").read_text())
    for h in record["post_history"]:  # as t2v post wrote them before the per-step hashes
        for key in ("input_frames_sha256", "frames_sha256", "crf"):
            h.pop(key)
    (tmp_path / "old.json").write_text(json.dumps(record))
    r = t2v("replay", tmp_path / "old.json", "-o", tmp_path / "old-again.mp4", "--model", tiny_model, "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "step 1/2 deflicker: made (no hash recorded)" in r.stdout and "step 2/2" in r.stdout
    assert "identical frames" in r.stdout
