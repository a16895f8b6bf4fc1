"""The ``t2v`` command end to end: files, records, reproducibility, bad input and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.export import decode_video, read_embedded
from tests.servers import as_from_a_terminal

RECORD_FIELDS = {
    "prompt", "negative_prompt", "seed", "num_frames", "num_inference_steps", "guidance_scale", "fps", "width",
    "height", "scheduler", "model", "model_hash", "device", "dtype", "warnings", "timings", "outputs", "created_at",
    "versions", "frames_sha256",
}
TIMINGS = {"load_s", "denoise_s", "decode_s", "encode_s", "total_s"}

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def small(model: Path) -> list[str]:
    return ["--model", str(model), "--frames", "6", "--width", "48", "--height", "32", "--steps", "2", "--quiet"]


def test_generate_mp4_webm_gif_with_records(tiny_model, tmp_path):
    out = tmp_path / "clips" / "panda.mp4"
    r = run("generate", "a panda surfing on a big ocean wave at sunset", *small(tiny_model), "--seed", "11",
            "--fps", "12", "-o", out, "--format", "mp4", "--format", "webm", "--format", "gif")
    assert r.exit_code == 0, r.output
    for ext in ("mp4", "webm", "gif"):
        frames, fps = decode_video(out.with_suffix("." + ext))
        assert frames.shape == (6, 32, 48, 3), ext
        # GIF delays are whole centiseconds: 1/12 s is stored as 8 cs.
        assert fps == pytest.approx(12, rel=0.05 if ext == "gif" else 0.001), ext
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert RECORD_FIELDS <= set(sidecar) and TIMINGS <= set(sidecar["timings"])
    assert {"t2v", "diffusers", "transformers", "torch"} <= set(sidecar["versions"])
    assert sidecar["seed"] == 11 and sidecar["num_frames"] == 6 and sidecar["fps"] == 12
    files = {o["file"]: o for o in sidecar["outputs"]}
    assert set(files) == {"panda.mp4", "panda.webm", "panda.gif"}
    assert files["panda.mp4"]["bytes"] == out.stat().st_size
    for ext in ("mp4", "webm", "gif"):
        embedded = read_embedded(out.with_suffix("." + ext))
        assert embedded["prompt"] == sidecar["prompt"] and embedded["seed"] == 11
        assert embedded["frames_sha256"] == sidecar["frames_sha256"]
        assert RECORD_FIELDS - {"outputs"} <= set(embedded)
    shown = run("inspect", out)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["seed"] == 11


def test_default_output_location_and_png(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("generate", "a green square moving up", *small(tiny_model), "--format", "png", "--seed", "3")
    assert r.exit_code == 0, r.output
    dirs = list((tmp_path / "outputs").glob("*-a-green-square-moving-up_frames"))
    assert len(dirs) == 1 and len(list(dirs[0].glob("*.png"))) == 6
    assert len(list((tmp_path / "outputs").glob("*-a-green-square-moving-up.json"))) == 1


def test_same_seed_identical_frames_and_replay_reproduces(tiny_model, tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for path in (a, b):
        assert run("generate", "a blue circle moving left", *small(tiny_model), "--seed", "42", "-o", path).exit_code == 0
    rec_a = json.loads(a.with_suffix(".json").read_text())
    rec_b = json.loads(b.with_suffix(".json").read_text())
    assert rec_a["frames_sha256"] == rec_b["frames_sha256"]
    assert np.array_equal(decode_video(a)[0], decode_video(b)[0])

    replayed = run("replay", a.with_suffix(".json"), "-o", tmp_path / "r.mp4")
    assert replayed.exit_code == 0, replayed.output
    assert "identical frames" in replayed.stdout
    assert json.loads((tmp_path / "r.json").read_text())["frames_sha256"] == rec_a["frames_sha256"]
    # A video's embedded record replays too.
    from_video = run("replay", a, "-o", tmp_path / "r2.mp4", "--quiet")
    assert from_video.exit_code == 0
    assert "identical frames" in from_video.stdout


def test_replay_reports_differences(tiny_model, tmp_path):
    a = tmp_path / "a.mp4"
    assert run("generate", "a cat", *small(tiny_model), "--seed", "1", "-o", a).exit_code == 0
    rec = json.loads(a.with_suffix(".json").read_text())
    rec["frames_sha256"] = "0" * 64
    rec["versions"]["torch"] = "0.0.1"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(rec))
    r = run("replay", edited, "-o", tmp_path / "r.mp4", "--quiet")
    assert r.exit_code == 0 and "frames differ" in r.stdout and "torch: 0.0.1" in r.stdout
    assert run("replay", edited, "-o", tmp_path / "r3.mp4", "--quiet", "--strict").exit_code == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", ""], "prompt"),
        (["generate", "a cat", "--frames", "0"], "num_frames"),
        (["generate", "a cat", "--frames", "10000"], "num_frames"),
        (["generate", "a cat", "--width", "63"], "width"),
        (["generate", "a cat", "--steps", "0"], "num_inference_steps"),
        (["generate", "a cat", "--guidance", "-1"], "guidance_scale"),
        (["generate", "a cat", "--scheduler", "heun"], "scheduler"),
        (["generate", "a cat", "--format", "avi"], "format"),
        (["generate", "a cat", "--device", "tpu"], "device"),
    ],
)
def test_bad_flags_exit_2_with_message_and_no_files(tiny_model, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = run(*args, "--model", tiny_model, "-o", tmp_path / "out" / "x.mp4")
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "outputs").exists()


def _no_outputs(directory: Path) -> bool:
    return not directory.exists() or not any(directory.rglob("*"))


def test_unknown_model_offline(tmp_path):
    r = run("generate", "a cat", "--model", "someone/not-a-real-model", "-o", tmp_path / "o" / "x.mp4")
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert "not in the cache" in err and "t2v models pull" in err and "Traceback" not in r.output
    assert _no_outputs(tmp_path / "o")


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("generate", "a cat", "--model", tmp_path / "empty", "-o", tmp_path / "o" / "x.mp4")
    assert r.exit_code == 2 and "model_index.json" in r.stderr
    assert _no_outputs(tmp_path / "o")


def test_corrupt_weights(model_copy, tmp_path):
    (model_copy / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 100)
    r = run("generate", "a cat", *small(model_copy), "-o", tmp_path / "o" / "x.mp4")
    assert r.exit_code == 2 and "could not load vae" in r.stderr
    assert _no_outputs(tmp_path / "o")


def test_output_dir_not_writable(tiny_model, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    r = run("generate", "a cat", *small(tiny_model), "-o", blocker / "x.mp4")
    assert r.exit_code == 2 and "file.txt" in r.stderr
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_dir_without_permission(tiny_model, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    r = run("generate", "a cat", *small(tiny_model), "-o", locked / "x.mp4")
    assert r.exit_code == 2 and "locked" in r.stderr
    assert list(locked.iterdir()) == []


def test_output_that_is_an_existing_folder_exits_2_before_generating(tiny_model, tmp_path):
    from t2v.models import loader

    (tmp_path / "side.json").mkdir()  # the sidecar's name
    (tmp_path / "clip.webm").mkdir()
    loader.clear_cache()
    for args, named in ((["-o", tmp_path / "side.mp4"], "side.json"),
                        (["-o", tmp_path / "clip.mp4", "--format", "webm"], "clip.webm")):
        r = run("generate", "a cat", *small(tiny_model), *args)
        assert r.exit_code == 2, r.output
        assert f"{tmp_path / named} is an existing folder" in r.stderr and "Traceback" not in r.output
    assert loader.loaded_models() == []  # refused before loading any weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.webm", "side.json"]  # no partial file
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_request_that_cannot_fit_exits_2_before_loading_weights(tiny_model, tmp_path):
    from t2v.models import loader

    loader.clear_cache()
    r = run("generate", "a cat", "--model", tiny_model, "--frames", "512", "--width", "2048", "--height", "2048",
            "--steps", "500", "-o", tmp_path / "out" / "x.mp4")
    assert r.exit_code == 2, r.output
    assert "num_frames, width, height: 512 frames of 2048x2048 need about" in r.stderr
    assert "memory budget" in r.stderr and "Traceback" not in r.output
    assert loader.loaded_models() == []
    assert not (tmp_path / "out").exists()
    # The budget can be set: the same small request runs under a generous one and is refused under a tiny one.
    tiny_budget = runner.invoke(app, ["generate", "a cat", *small(tiny_model), "-o", tmp_path / "b.mp4"],
                                env={"T2V_MEMORY_BUDGET_GB": "0.01"})
    assert tiny_budget.exit_code == 2 and "over the memory budget of 10 MiB" in tiny_budget.stderr


def test_cli_accepts_a_model_folder_outside_the_model_roots(tmp_path):
    from t2v.models.registry import lookup

    folder = lookup("t2v-shapes").bundled_path  # in the package, outside T2V_MODEL_ROOTS (the test temp dir)
    r = run("generate", "a red circle", "--model", folder, "--frames", "2", "--steps", "1", "-q", "-o", tmp_path / "s.mp4")
    assert r.exit_code == 0, r.output
    assert decode_video(tmp_path / "s.mp4")[0].shape == (2, 64, 64, 3)


def test_models_commands(tiny_model, tmp_path):
    listed = run("models", "list", "--json")
    assert listed.exit_code == 0
    ids = {m["id"]: m for m in json.loads(listed.stdout)}
    assert ids["damo-vilab/text-to-video-ms-1.7b"]["defaults"]["width"] == 256
    assert ids["cerspense/zeroscope_v2_576w"]["defaults"]["num_frames"] == 24
    shown = run("models", "show", "modelscope")
    assert shown.exit_code == 0 and "CC-BY-NC-ND" in shown.stdout
    assert json.loads(run("models", "show", tiny_model, "--json").stdout)["family"] == "modelscope"
    assert run("models", "show", "nope").exit_code == 2
    assert run("models", "make-tiny", tiny_model).exit_code == 2  # not an empty folder
    assert run("models", "make-tiny", tmp_path / "t", "--family", "nope").exit_code == 2  # no such family
    assert not (tmp_path / "t").exists()  # nothing half-made is left
    unwritable = run("models", "make-tiny", "/proc/t2v-tiny")  # a folder that cannot be made: exit 2, saying so
    assert unwritable.exit_code == 2 and "cannot create /proc/t2v-tiny" in unwritable.output
    for cmd in (["--help"], ["generate", "--help"], ["replay", "--help"], ["inspect", "--help"], ["models", "--help"],
                ["models", "make-tiny", "--help"], ["models", "pull", "--help"]):
        assert run(*cmd).exit_code == 0, cmd
    assert "t2v" in run("--version").stdout


def test_inspect_bad_file(tmp_path):
    assert run("inspect", tmp_path / "missing.mp4").exit_code == 2
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"nope")
    r = run("inspect", junk)
    assert r.exit_code != 0 and "Traceback" not in r.output


def _cli(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "T2V_LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "t2v", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_real_process_generates_valid_mp4(tiny_model, tmp_path):
    proc = _cli("generate", "a yellow triangle moving down", "--model", tiny_model, "--seed", "2", "-o", tmp_path / "t.mp4")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    frames, fps = decode_video(tmp_path / "t.mp4")
    assert frames.shape == (8, 64, 64, 3) and fps == pytest.approx(8)  # the tiny model's own defaults
    assert "seed 2" in stdout


def test_ctrl_c_during_denoising_exits_130_and_leaves_nothing(tiny_model, tmp_path):
    out = tmp_path / "out"
    proc = _cli("generate", "a white circle moving left", "--model", tiny_model, "--steps", "400", "-o", out / "x.mp4",
                preexec_fn=as_from_a_terminal)
    deadline = time.time() + 240
    for line in proc.stderr:
        if "step 2/400" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists() or list(out.iterdir()) == []  # checked writable (not created yet), nothing partial left


def test_the_bar_shows_the_runs_time_left_and_counts_it_down():
    from rich.progress import Progress

    from t2v.cli.progress import TimeLeftColumn, until

    column = TimeLeftColumn()
    with Progress(disable=True) as progress:
        running = progress.add_task("Decoding frames", total=None, until=until(65.4))
        plain = progress.add_task("Denoising", total=4)
        decoding = progress.add_task("done", total=4, until=until(30.0))  # all steps done, the decode runs
        progress.update(decoding, completed=4)
        ended = progress.add_task("Denoising", total=4, until=until(30.0))
        progress.update(ended, completed=4, until=None)  # as GenerationProgress leaves a stage that has ended
        tasks = {t.id: t for t in progress.tasks}
        assert str(column.render(tasks[running])) in ("0:01:05", "0:01:04")
        assert str(column.render(tasks[plain])) == "-:--:--"  # no ETA given: Rich's own, which has no samples yet
        assert str(column.render(tasks[decoding])) in ("0:00:30", "0:00:29")  # a full bar still counts down
        assert str(column.render(tasks[ended])) == "0:00:00"


@pytest.mark.parametrize("variable, value, message", [
    ("T2V_MAX_FRAMES", "-1", "T2V_MAX_FRAMES: Input should be greater than or equal to 1 (got '-1')"),
    ("T2V_MODEL_CACHE_GB", "abc", "T2V_MODEL_CACHE_GB: Input should be a valid number"),
    ("T2V_CPU_BF16", "maybe", "T2V_CPU_BF16: Input should be a valid boolean"),
    ("T2V_HOME", "FILE", "is a file, not a folder"),
    ("T2V_DATABASE_URL", "garbage", "T2V_DATABASE_URL: 'garbage' is not a database URL; use sqlite:///"),
    ("T2V_STORAGE_URL", "ftp://x", "T2V_STORAGE_URL must look like s3://bucket/prefix"),
    ("T2V_WEBHOOK_ALLOW", "127.0.0.1,10.1.0.0/33", "T2V_WEBHOOK_ALLOW: '10.1.0.0/33' is not a valid IP address or CIDR"),
    ("T2V_WEBHOOK_ALLOW", "127.0.0.1:8080", "T2V_WEBHOOK_ALLOW: '127.0.0.1:8080' is not a valid IP address"),
    ("T2V_WEBHOOK_ALLOW", "hooks internal", "T2V_WEBHOOK_ALLOW: 'hooks internal' is not a host name"),
])
def test_a_bad_setting_in_the_environment_exits_2_naming_the_variable(tmp_path, monkeypatch, variable, value, message):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    if value == "FILE":
        (tmp_path / "a-file").write_text("x")
        value = str(tmp_path / "a-file")
    monkeypatch.setenv(variable, value)
    for args in (["jobs", "list"], ["plan", "a cat", "--model", "t2v-shapes"]):
        if variable in ("T2V_DATABASE_URL", "T2V_STORAGE_URL") and args[0] == "plan":
            continue  # planning opens neither
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (args, result.output)
        assert "unexpected failure" not in result.output


def test_serve_refuses_a_port_out_of_range_and_an_unknown_log_level_before_binding(tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["serve", "--no-ui", "--port", "70000"])
    assert result.exit_code == 2 and "65535" in result.output
    monkeypatch.setenv("T2V_UVICORN_LOG", "bogus")
    result = runner.invoke(app, ["serve", "--no-ui", "--no-workers"])
    assert result.exit_code == 2 and "T2V_UVICORN_LOG: 'bogus' is not a log level; use one of critical" in result.output


def test_an_output_that_is_an_input_or_a_video_format_t2v_does_not_write_is_refused(tiny_model, tmp_path):
    clip = tmp_path / "src.mp4"
    assert run("generate", "a red fox", "--model", tiny_model, "-o", clip, "--quiet").exit_code == 0
    before = clip.read_bytes()
    for args in (["extend", clip, "more fox", "--model", tiny_model, "--seconds", "1"],
                 ["generate", "a blue fox", "--model", tiny_model, "--video", clip]):
        r = run(*args, "-o", clip, "--quiet")
        assert r.exit_code == 2 and "is an input of this run; choose another output name (e.g. src-2.mp4)" in r.stderr, r.output
        assert clip.read_bytes() == before
    r = run("generate", "a red fox", "--model", tiny_model, "-o", tmp_path / "x.avi", "--quiet")
    assert r.exit_code == 2 and "t2v does not write .avi files; end the name in .mp4, .webm, .gif (e.g. x.mp4)" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "t2v-home") == ["src.json", "src.mp4"]


def test_replay_and_inspect_refuse_damaged_records_and_foreign_files_with_exit_2(tiny_model, tmp_path):
    from PIL import Image

    clip = tmp_path / "ok.mp4"
    assert run("generate", "a red fox", "--model", tiny_model, "-o", clip, "--quiet").exit_code == 0
    record = json.loads((tmp_path / "ok.json").read_text())
    for change, message in (({"seed": None}, "seed is None; a replay needs the whole-number seed"),
                            ({"postprocess": "x"}, "postprocess is a str, not a JSON object")):
        edited = tmp_path / "edited.json"
        edited.write_text(json.dumps({**record, **change}))
        r = run("replay", edited, "-o", tmp_path / "out" / "again.mp4", "--quiet")
        assert r.exit_code == 2 and message in r.stderr, r.output
        assert not (tmp_path / "out").exists()  # refused before anything was generated
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.png")
    for name in ("junk.mp4", "plain.png"):
        for command in ("inspect", "replay"):
            r = run(command, tmp_path / name)
            assert r.exit_code == 2 and "unexpected failure" not in r.output, (command, name, r.output)


@pytest.mark.parametrize("args, message", [
    (["plan", "a cat", "--upscale", "0"], "post.upscale: must be 2 or 4, got 0; nearest valid: 2"),
    (["plan", "a cat", "--interpolate", "0"], "post.interpolate: Input should be greater than or equal to 2"),
    (["plan", "a cat", "--target-fps", "0"], "post.target_fps: Input should be greater than 0"),
    (["generate", "a cat", "--server", "notaurl"], "--server: 'notaurl' is not a server URL; give one like http://"),
    (["generate", "a cat", "--server", "ftp://host"], "is not a server URL"),
])
def test_zero_post_steps_and_malformed_server_urls_exit_2(tiny_model, tmp_path, monkeypatch, args, message):
    """A 0 used to mean "no step" (silently); a URL without http(s) was reported as an unreachable server (exit 1)."""
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    r = run(*args, "--model", tiny_model) if args[0] == "plan" else run(*args, "-o", tmp_path / "x.mp4")
    assert r.exit_code == 2 and message in " ".join(r.stderr.split()), r.output
