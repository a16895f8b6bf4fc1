"""``t2v generate --server URL``: the request made by a running ``t2v serve`` (warm model, two workers, keys
on), its files and record fetched here whole; bad input refused before anything is sent; Ctrl-C cancels the job
on the server; and the CLI process never imports torch.

Adds about two minutes: every test talks to a real ``t2v serve`` process, one of which is killed and restarted in
the middle of a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import av
import httpx
import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.export import read_embedded
from tests.servers import as_from_a_terminal
from tests.web import HTTP

PROMPT = "a red circle moving right"


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    from tests.servers import make_keys, serve

    home = tmp_path_factory.mktemp("remote-home")
    [token] = make_keys(home, ("cli", {}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp(), workers=2) as s:  # keys on
        s.key = token
        yield s


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command in a fresh process (``-X importtime``: its imports are listed on stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("T2V_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "t2v", "generate", PROMPT, *args],
                          env=environ, capture_output=True, text=True, timeout=300)


def test_json_prints_the_fetched_record_alone_on_stdout(server, tmp_path):
    done = cli("--server", server.url, "--key", server.key, "--seed", "8", "--steps", "2", "-o", str(tmp_path / "j.mp4"),
               "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.splitlines()) == 1  # the record, one line; the summary is not printed
    record = json.loads(done.stdout)
    assert record == json.loads((tmp_path / "j.json").read_text()) and record["seed"] == 8
    assert record["frames_sha256"] == read_embedded(tmp_path / "j.mp4")["frames_sha256"]


def frames_of(path) -> list:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_the_server_makes_it_and_the_files_come_here_whole(server, tmp_path):
    done = cli("--server", server.url, "--key", server.key, "--seed", "7", "--steps", "3", "--format", "webm",
               "-o", str(tmp_path / "clips" / "c.mp4"))
    assert done.returncode == 0, done.stderr[-3000:]
    imports = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imports and "t2v.cli.remote" in imports
    assert not [m for m in imports if m == "torch" or m.startswith(("torch.", "diffusers"))]  # nothing loads here
    files = sorted(p.name for p in (tmp_path / "clips").iterdir())
    assert files == ["c.json", "c.mp4", "c.webm"]  # -o's mp4 and --format webm, as a local run; no .part left
    record = json.loads((tmp_path / "clips" / "c.json").read_text())
    assert record["seed"] == 7 and record["num_inference_steps"] == 3
    assert read_embedded(tmp_path / "clips" / "c.mp4")["frames_sha256"] == record["frames_sha256"]
    for name in ("c.mp4", "c.webm"):
        frames = frames_of(tmp_path / "clips" / name)
        assert len(frames) == record["num_frames"] and frames[0].shape == (record["height"], record["width"], 3)
    summary = " ".join(done.stdout.split())  # as printed, lines folded at the terminal's width
    assert f"seed 7 · {record['num_frames']} frames" in summary and f"on {server.url} (job " in summary

    # t2v extend --server: the clip is uploaded and continued there; the whole video and its record come back
    environ = {k: v for k, v in os.environ.items() if not k.startswith("T2V_")}
    done = subprocess.run([sys.executable, "-m", "t2v", "extend", str(tmp_path / "clips" / "c.mp4"), PROMPT, "--server",
                           server.url, "--key", server.key, "--steps", "2", "-o", str(tmp_path / "ext.mp4")],
                          env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    extended = json.loads((tmp_path / "ext.json").read_text())
    assert extended["extend_sha256"] and extended["long"]["frames"] > record["num_frames"]
    assert len(frames_of(tmp_path / "ext.mp4")) == extended["long"]["frames"]


def test_a_refused_key_and_a_server_side_refusal_exit_2_and_write_nothing(server, tmp_path):
    out = tmp_path / "x.mp4"
    done = cli("--server", server.url, "-o", str(out))
    assert done.returncode == 2 and "refused the key" in done.stderr
    done = cli("--server", server.url, "--key", server.key, "--model", "/nowhere/model", "-o", str(out))
    assert done.returncode == 2 and "model" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_prompt_schedule_a_video_and_a_local_model_setting_go_as_the_api_takes_them(server, tmp_path):
    clip = tmp_path / "in.mp4"
    done = cli("--server", server.url, "--key", server.key, "--steps", "2", "-o", str(clip),
               "--prompt-schedule", "0: a red circle moving right", "4: a blue square moving up",
               env={"T2V_MODEL": "/this/machine/only"})  # this machine's setting: the server's own model is used
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(clip.with_suffix(".json").read_text())
    assert [e["prompt"] for e in record["long"]["segments"]] == ["a red circle moving right", "a blue square moving up"]
    assert record["outputs"][0]["file"] == "in.mp4"  # the record names the files as written here
    out = tmp_path / "v2v.mp4"
    done = cli("--server", server.url, "--key", server.key, "--steps", "2", "--video", str(clip), "--strength", "0.5",
               "-o", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.with_suffix(".json").read_text())["strength"] == 0.5
    missing = cli("--server", server.url, "--key", server.key, "--video", str(tmp_path / "nope.mp4"),
                  "-o", str(tmp_path / "x.mp4"))
    assert missing.returncode == 2 and "video: " in missing.stderr and "does not exist" in missing.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_flags_the_server_decides_are_refused_before_anything_is_sent(tmp_path):
    nowhere = "http://127.0.0.1:9"  # nothing listens: a refusal here proves nothing was sent
    runner = CliRunner()
    for flags, word in ((["--dtype", "bf16"], "T2V_DTYPE"), (["--memory", "low"], "T2V_MEMORY"),
                        (["--compile"], "T2V_COMPILE"), (["--threads", "2"], "T2V_THREADS"),
                        (["--format", "png"], "nearest valid: --format mp4")):
        result = runner.invoke(app, ["generate", PROMPT, "--server", nowhere, *flags, "-o", str(tmp_path / "a.mp4")])
        assert result.exit_code == 2 and word in result.output, (flags, result.output)
    # This machine's own settings (its environment) are not the server's: not refused, so the server is asked.
    result = runner.invoke(app, ["generate", PROMPT, "--server", nowhere, "-o", str(tmp_path / "a.mp4")],
                           env={"T2V_DTYPE": "bf16", "T2V_THREADS": "1"})
    assert result.exit_code == 1 and "cannot reach the t2v server at http://127.0.0.1:9" in result.output
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_cancels_the_job_on_the_server(server, tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("T2V_")}
    proc = subprocess.Popen([sys.executable, "-m", "t2v", "generate", PROMPT, "--server", server.url, "--key",
                             server.key, "--steps", "500", "-o", str(tmp_path / "long.mp4")], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    headers = {"Authorization": f"Bearer {server.key}"}
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline:
        jobs = HTTP.get(f"{server.url}/v1/videos", headers=headers, params={"status": "running"}).json()["items"]
        running = [j for j in jobs if j["request"]["num_inference_steps"] == 500 and j["progress"]["step"] >= 1]
        time.sleep(0.2)
    assert running, "the job never ran"
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"Ctrl-C did not end the command: {proc.communicate()[1][-3000:]}") from None
    assert proc.returncode == 130 and "cancelled on the server" in stderr, stderr[-2000:]
    job_id = running[0]["id"]
    while (job := HTTP.get(f"{server.url}/v1/videos/{job_id}", headers=headers).json())["status"] == "running":
        time.sleep(0.2)
    assert job["status"] == "cancelled" and job["progress"]["step"] < 500
    assert list(tmp_path.iterdir()) == []


def test_a_server_killed_and_restarted_in_the_middle_still_delivers(tiny_model, tmp_path, tmp_path_factory):
    """kill -9 of the server while the job runs, the same server started again: the job resumes from its
    checkpoint there, the CLI's event stream reconnects, and the files and record arrive."""
    from t2v.desktop.local import free_port
    from tests.forkserver import start_t2v
    from tests.servers import make_keys, stop

    home = tmp_path / "home"
    [token] = make_keys(home, ("cli", {}))
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("T2V_")}
    server_env = {**environ, "T2V_HOME": str(home), "T2V_MODEL_ROOTS": str(tmp_path_factory.getbasetemp()),
                  "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1", "T2V_UI": "0", "T2V_CHECKPOINT_EVERY": "2"}
    url = f"http://127.0.0.1:{port}"

    def start():
        # a fork of tests/forkserver.py: what is tested is the client's reconnecting (tests/api/test_server.py
        # kills and restarts new `python -m t2v serve` processes)
        proc = start_t2v(["serve", "--port", str(port), "--model", str(tiny_model)], server_env, tmp_path / "serve.log",
                         append=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if HTTP.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.2)
        stop(proc)
        raise AssertionError("t2v serve did not start")

    server = start()
    out = tmp_path / "out"
    client = subprocess.Popen([sys.executable, "-m", "t2v", "generate", PROMPT, "--server", url, "--key", token,
                               "--steps", "60", "--seed", "4", "--frames", "4", "--width", "32", "--height", "32",
                               "-o", str(out / "r.mp4")], env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            items = HTTP.get(f"{url}/v1/videos", headers=headers).json()["items"]
            if items and items[0]["status"] == "running" and items[0]["progress"]["step"] >= 6:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the job never ran to step 6: {items}")
        server.kill()  # kill -9, in the middle of the job
        server.wait()
        server = start()
        stdout, stderr = client.communicate(timeout=240)
    finally:
        stop(server)
        if client.poll() is None:
            client.kill()
    assert client.returncode == 0, stderr[-3000:]
    record = json.loads((out / "r.json").read_text())
    assert record["seed"] == 4 and record["resumed_from_step"] >= 6  # the restarted server went on from there
    assert len(frames_of(out / "r.mp4")) == record["num_frames"]
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.mp4"]


@pytest.fixture(scope="module")
def input_files(tmp_path_factory):
    """A tiny VACE and a tiny first-last-frame model (under the server's model roots), a control clip, a mask,
    a reference image and two frames."""
    import numpy as np
    from PIL import Image

    from t2v.export.writers import write_video
    from tests.tinymodels import make_tiny

    root = tmp_path_factory.mktemp("remote-inputs")
    yy, xx = np.mgrid[0:32, 0:64]
    clip = np.stack([np.stack([(xx * 3 + i * 9) % 256, yy * 7 % 256, (xx + i) % 256], -1) for i in range(9)])
    write_video(clip.astype(np.uint8), root / "control.mp4", "mp4", 8, crf=4)
    mask = np.zeros((9, 32, 64, 3), np.uint8)
    for i in range(9):
        mask[i, 4:28, 4 * i:4 * i + 24] = 255
    write_video(mask, root / "mask.gif", "gif", 8)
    rng = np.random.default_rng(1)
    for name, shape in (("ref.png", (40, 24, 3)), ("first.png", (32, 64, 3)), ("last.png", (32, 64, 3))):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / name)
    return {"root": root, "vace": make_tiny(root / "vace", family="wan-vace", seed=0),
            "flf2v": make_tiny(root / "flf2v", family="wan-flf2v", seed=0)}


@pytest.mark.parametrize("model, flags", [
    ("vace", ("--control-video", "control.mp4", "--mask-video", "mask.gif", "--reference-image", "ref.png",
              "--control-scale", "0.7")),
    ("flf2v", ("--image", "first.png", "--last-image", "last.png")),
])
def test_every_input_file_is_uploaded_and_the_frames_equal_a_local_run(server, input_files, tmp_path, model, flags):
    root = input_files["root"]
    args = ["--model", str(input_files[model]), "--seed", "5", "--steps", "2",
            *[str(root / f) if f.endswith((".mp4", ".gif", ".png")) else f for f in flags]]
    remote = cli("--server", server.url, "--key", server.key, *args, "-o", str(tmp_path / "remote.mp4"), "--json")
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = cli(*args, "-o", str(tmp_path / "local.mp4"), "--json")
    assert local.returncode == 0, local.stderr[-3000:]
    theirs, ours = json.loads(remote.stdout), json.loads(local.stdout)
    assert theirs["frames_sha256"] == ours["frames_sha256"]
    for name in ("control_video_sha256", "mask_video_sha256", "reference_images_sha256", "image_sha256",
                 "last_image_sha256"):
        assert theirs.get(name) == ours.get(name)
    assert theirs.get("last_image_sha256" if model == "flf2v" else "control_video_sha256")
