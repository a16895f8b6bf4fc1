"""End to end: the real ``t2v desktop`` process under Xvfb against a real server, driven with xdotool as a
person would (click the prompt box, type, click Generate), then the screen is read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from t2v.client import Client
from tests.servers import stop


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=30)


def read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wait_for(path: Path, until, proc, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = read_report(path)
        if state and until(state):
            return state
        if proc.poll() is not None:
            raise AssertionError(f"t2v desktop exited {proc.returncode} waiting for {what}: {proc.stdout.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the window showed {state}")
        time.sleep(0.1)


def centre(box: list[int]) -> tuple[str, str]:
    x, y, w, h = box
    return str(x + w // 2), str(y + h // 2)


def test_type_a_prompt_click_generate_and_watch_the_clip_play(display, server, tmp_path):
    if shutil.which("xdotool") is None:
        if os.environ.get("CI"):
            pytest.fail("xdotool is missing: .ci/run installs it (apt-get install xdotool)")
        pytest.skip("xdotool is not installed")
    from PIL import ImageGrab

    from t2v.desktop.tasks import VIEW_SIDE
    from t2v.desktop.player import decode

    report = tmp_path / "window.json"
    env = {**os.environ, "DISPLAY": display, "T2V_DESKTOP_REPORT": str(report)}
    proc = subprocess.Popen([sys.executable, "-m", "t2v", "desktop", "--server", server.url, "--key", server.key,
                             "--downloads", str(tmp_path / "clips")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        state = wait_for(report, lambda s: s.get("ready"), proc, 60, "the models")
        assert state["model"] == server.name  # the folder's public name and state["error"] == ""
        assert state["model_shown"] == f"{server.name} · this server's model · ready" and state["model_note"] == ""
        boxes = state["boxes"]
        xdotool("mousemove", *centre(boxes["prompt"]), "click", "1")
        xdotool("type", "--delay", "20", "a zebra on a skateboard")
        xdotool("mousemove", *centre(boxes["generate"]), "click", "1")
        state = wait_for(report, lambda s: s.get("playing") and s.get("clip") and s.get("job") in s.get("history", []),
                         proc, 180, "the clip to play and the job to be in the history")
        job = Client(server.url, server.key).get(state["job"])
        assert job.status == "succeeded" and job.request["prompt"] == "a zebra on a skateboard"
        clip = Path(state["clip"])
        assert clip.parent == tmp_path / "clips" and clip.is_file()
        frames, _ = decode(clip, max_side=VIEW_SIDE)
        assert len(frames) == job.request["num_frames"] and state["frame_count"] == len(frames)

        # The screen shows the clip's decoded frames, pixel for pixel, centred in the player, one after another.
        x, y, w, h = state["boxes"]["screen"]
        fw, fh = frames[0].size
        left, top = x + (w - fw) // 2, y + (h - fh) // 2
        shown = []
        for _ in range(12):
            shot = np.asarray(ImageGrab.grab(bbox=(left, top, left + fw, top + fh), xdisplay=display).convert("RGB"))
            diffs = [np.abs(shot.astype(int) - np.asarray(f).astype(int)).mean() for f in frames]
            assert min(diffs) < 1.0, f"the player area matches no frame (mean differences {diffs})"
            assert shot.std() > 5  # a picture, not a blank label
            shown.append(int(np.argmin(diffs)))
            time.sleep(0.25)
        assert len(set(shown)) > 1, f"the clip does not move: frames {shown}"
        if os.environ.get("T2V_SCREENSHOT"):  # a picture of the window, to look at
            x, y, w, h = state["boxes"]["window"]
            ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=display).save(os.environ["T2V_SCREENSHOT"])
    finally:
        stop(proc)


def test_bad_flags_and_no_display_are_one_line_with_exit_code_2(monkeypatch):
    from typer.testing import CliRunner

    from t2v.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["desktop", "--server", "ftp://x"])
    assert result.exit_code == 2 and "--server: 'ftp://x' is not an http(s) URL" in result.output
    result = runner.invoke(app, ["desktop", "--server", "http://127.0.0.1:1", "--model", "t2v-shapes"])
    assert result.exit_code == 2 and "--model: only for the private server" in result.output
    monkeypatch.delenv("DISPLAY", raising=False)
    result = runner.invoke(app, ["desktop", "--server", "http://127.0.0.1:1"])
    assert result.exit_code == 2 and "cannot open a window" in result.output and "Traceback" not in result.output
