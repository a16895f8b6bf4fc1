"""``t2v train``, ``train-lora``, ``eval shapes``, ``data shapes``, ``image`` and ``sequence`` from the command line."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.export import decode_video, read_embedded

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_data_shapes_writes_a_folder(tmp_path):
    r = run("data", "shapes", tmp_path / "d", "--clips", "3", "--colors", "purple,red", "--seed", "4")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "d" / "captions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(row["label"]["color"] in ("purple", "red") for row in rows)
    frames, fps = decode_video(tmp_path / "d" / rows[0]["file"])
    assert frames.shape == (8, 64, 64, 3) and fps == 8


@pytest.mark.parametrize("args, message", [
    (["data", "shapes", "X", "--colors", "mauve"], "unknown mauve"),
    (["data", "shapes", "X", "--clips", "0"], "clips: must be at least 1"),
    (["train", "--data", "/nonexistent/clips", "--out", "X"], "neither 'shapes' nor a folder"),
    (["train", "--data", "shapes", "--out", "X", "--preset", "huge"], "unknown 'huge'"),
    (["train", "--data", "shapes", "--out", "X", "--steps", "0"], "steps: must be at least 1"),
    (["train", "--data", "shapes", "--out", "X", "--high-noise-share", "1.5"], "high_noise_share: must be between 0 and 1"),
    (["train", "--data", "shapes", "--out", "X", "--high-noise-from", "1"], "high_noise_from: must be at least 0 and below 1"),
    (["train", "--data", "shapes", "--out", "X", "--modifiers", "1.5"], "modifiers: must be between 0 and 1; nearest valid: 1"),
    (["train", "--data", "shapes", "--out", "X", "--frames", "8,x"], "frames: '8,x' is not a comma-separated list"),
    (["train-lora", "--base", "t2v-shapes", "--data", "/nonexistent", "--out", "X"], "is not a folder"),
    (["train-lora", "--base", "t2v-shapes", "--data", ".", "--out", "X", "--rank", "0"], "rank"),
    (["eval", "shapes", "--split", "some"], "split: choose all, heldout or train"),
    (["eval", "shapes", "--colors", "mauve"], "unknown mauve"),
    (["eval", "shapes", "--prompts", "/nonexistent.txt"], "is not a file"),
    (["generate", "x", "--lora", "/nonexistent/adapter"], "lora"),
    (["sequence", "0: a", "0: b"], "frame 0 appears twice"),
    (["sequence", "5: a"], "the first keyframe must be frame 0"),
    (["sequence", "0: a", "--method", "warp"], "unknown method"),
    (["image", "a cat", "--count", "0"], "count"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_bad_input_exits_2_naming_the_problem(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_eval_prompts_file_must_name_colour_shape_direction(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# comment\na dog running\n")
    r = run("eval", "shapes", "--prompts", f)
    assert r.exit_code == 2 and "does not name a colour" in r.output


def test_eval_shapes_reports_per_frame_rates_for_the_seeds_asked(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("a red circle moving right\n")
    report = tmp_path / "r.json"
    r = run("eval", "shapes", "--prompts", f, "--seeds", "2", "--first-seed", "5", "--steps", "2", "--json-out", report)
    assert r.exit_code == 0, r.output
    assert "color / shape every frame: each frame reads the prompt's" in " ".join(r.output.split())
    data = json.loads(report.read_text())
    assert [row["seed"] for row in data["rows"]] == [5, 6] and data["first_seed"] == 5
    for row in data["rows"]:  # every frame read, and the clip's rates follow from those readings
        got = row["got"]
        assert len(got["frame_colors"]) == len(got["frame_shapes"]) == len(got["track"]) == len(got["brightness"]) == 8
        assert row["color_stable"] == all(c == "red" for c in got["frame_colors"])
        assert row["shape_stable"] == all(s == "circle" for s in got["frame_shapes"])
    rates = data["summary"]["overall"]
    assert rates["color_stable"] == sum(row["color_stable"] for row in data["rows"]) / 2
    bad = run("eval", "shapes", "--prompts", f, "--seeds", "1", "--first-seed", "-1")
    assert bad.exit_code == 2 and "first_seed: must be 0 or more; nearest valid: 0" in bad.output


def test_eval_shapes_scores_size_and_speed_words_at_the_frames_asked(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("a small red circle moving right slowly\na blue square moving up\n")
    report = tmp_path / "r.json"
    r = run("eval", "shapes", "--prompts", f, "--seeds", "1", "--frames", "12", "--steps", "2", "--json-out", report)
    assert r.exit_code == 0, r.output
    assert "all asked" in r.output and "speed" in r.output
    data = json.loads(report.read_text())
    asked, plain = data["rows"]
    assert data["frames"] == 12 and len(asked["got"]["frame_colors"]) == len(plain["got"]["frame_colors"]) == 12
    assert asked["size_ok"] == (asked["got"]["size"] == "small") and asked["speed_ok"] == (asked["got"]["speed"] == "slowly")
    assert "size_ok" not in plain and data["summary"]["overall"]["size"] == float(asked["size_ok"])
    bad = run("eval", "shapes", "--prompts", f, "--frames", "0")
    assert bad.exit_code == 2 and "num_frames" in bad.output


def test_sequence_and_image_commands(tiny_sd_model, tmp_path):
    r = run("sequence", "0: a red circle", "3: a blue square", "--model", tiny_sd_model, "--width", "32", "--height", "32",
            "--steps", "2", "--seed", "5", "--method", "interpolate", "--fps", "4", "-o", tmp_path / "s.mp4",
            "--contact-sheet", "--denoise-grid", "auto", "--quiet")
    assert r.exit_code == 0, r.output
    frames, fps = decode_video(tmp_path / "s.mp4")
    assert frames.shape == (4, 32, 32, 3) and fps == 4
    assert (tmp_path / "s.contact.png").is_file() and (tmp_path / "s.denoise.png").is_file()
    rec = read_embedded(tmp_path / "s.mp4")
    assert rec["method"] == "interpolate" and rec["denoise_grid"] == [1, 2]
    again = run("replay", tmp_path / "s.json", "-o", tmp_path / "again.mp4", "--strict")
    assert again.exit_code == 0 and "identical frames" in again.output
    r = run("image", "a red circle", "-n", "2", "--model", tiny_sd_model, "--width", "32", "--height", "32",
            "--steps", "2", "--seed", "9", "-o", tmp_path / "pic.png")
    assert r.exit_code == 0, r.output
    assert read_embedded(tmp_path / "pic-01.png")["seed"] == 10


def test_train_prints_plain_progress_lines_when_not_a_terminal(tmp_path):
    r = run("train", "--data", "shapes", "--out", tmp_path / "m", "--preset", "tiny", "--steps", "40", "--batch", "2",
            "--vae-steps", "5", "--clips", "8", "--checkpoint-every", "40", "--preview-every", "40", "--device", "cpu")
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if re.match(r"Diffusion model \d+/40 ", line)]  # not Rich's bar
    assert [line.split()[2] for line in lines] == [f"{s}/40" for s in range(2, 41, 2)]  # every 5%, not every step
    assert all("loss " in line for line in lines)
    assert (tmp_path / "m" / "unet" / "config.json").is_file()


def test_plain_progress_lines_also_come_for_phases_whose_steps_skip_the_5_percent_marks(capsys):
    from t2v.cli.train import TrainProgress
    from t2v.train.common import TrainEvent

    with TrainProgress() as bar:
        for step in range(32, 1025, 32):  # re-rendering goes 32 clips at a time
            bar(TrainEvent("refine-sample", step, 1024))
    lines = [line for line in capsys.readouterr().err.splitlines() if re.match(r"Re-rendering clips \d+/1024 ", line)]
    assert len(lines) == 20 and lines[-1].startswith("Re-rendering clips 1024/1024")  # one per 5% bucket, not Rich's bar
