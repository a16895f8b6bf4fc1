"""Desktop tests run under Xvfb (started here, on a free display) against a real ``t2v serve``."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


@pytest.fixture(scope="session")
def display():
    """An Xvfb display (1280x960, 24-bit) for the session; DISPLAY points at it. Xvfb picks a free display number
    itself and writes it to a pipe (``-displayfd``): two test processes starting one at the same moment never
    share a display."""
    if shutil.which("Xvfb") is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb is missing: .ci/run installs it (apt-get install xvfb)")
        pytest.skip("Xvfb is not installed (apt-get install xvfb xdotool)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x960x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write,))
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            ready, _, _ = select.select([pipe], [], [], 30)
            number = pipe.readline().strip() if ready else ""
    except BaseException:
        proc.kill()
        raise
    if not number.isdigit():
        proc.kill()
        raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()})")
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield f":{number}"
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """``t2v serve`` over the tiny model with API keys on: ``key`` (main) and ``other`` (another user's)."""
    from tests.servers import make_keys, serve

    home = tmp_path_factory.mktemp("desktop-home")
    key, other = make_keys(home, ("main", {}), ("other", {}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp()) as s:
        yield SimpleNamespace(url=s.url, key=key, other=other, model=str(tiny_model), name=tiny_model.name, home=home)


# Every Tk interpreter a test made, kept until the process exits: Tcl aborts the process if an interpreter is
# deleted from another thread than its own, which would happen were the last reference to it (a widget a
# callback kept, a cycle) dropped in a server's or a worker's thread after the test.
INTERPRETERS: list = []


@pytest.fixture
def root(display):
    """A Tk root for one test. The cyclic garbage collector is paused meanwhile and run here at the end, on
    this (the Tk) thread: a collection triggered in a worker thread would finalise Tk objects there, which
    Tcl does not allow (a long-lived app drops its widgets only at exit, so it does not need this).

    With the collector paused, what the test makes stays in the youngest generation, so the collection at the
    end is of that generation alone: it holds Tk's objects, and a full collection of a pytest worker that has
    run many tests took about a second each time."""
    import gc
    import tkinter as tk

    gc.disable()
    root = tk.Tk(className="t2v-test")
    INTERPRETERS.append(root.tk)
    try:
        yield root
    finally:
        try:
            root.destroy()
        except tk.TclError:  # the app closed it
            pass
        del root
        gc.collect(0)
        gc.enable()


def pump(root, until, timeout: float = 60.0, what: str = "the window", app=None) -> None:
    """Run Tk's event loop until ``until()`` is true (AssertionError naming ``what`` after ``timeout``, with
    the ``app``'s status and error lines)."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            shown = f" (status {app.status.cget('text')!r}, error {app.error.cget('text')!r})" if app else ""
            raise AssertionError(f"timed out waiting for {what}{shown}")
        root.update()
        time.sleep(0.01)


@pytest.fixture
def make_app(root, server, tmp_path):
    """``make_app(key="main")``: the window over ``server`` (closed after the test)."""
    from t2v.desktop.app import DesktopApp

    apps = []

    def make(key="main"):
        token = {"main": server.key, "other": server.other, None: None}[key]
        app = DesktopApp(root, server.url, token, downloads=tmp_path / "clips", theme=False)
        app.confirm = lambda *_: True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def ready(app):
    return bool(app.form.models) and "Ready" in app.status.cget("text")


def fill_small(app, prompt: str, **extra) -> None:
    app.form.fill({"prompt": prompt, **SMALL, **extra})


def decoded(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
