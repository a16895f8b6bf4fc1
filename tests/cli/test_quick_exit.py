"""The ``t2v`` program ends without the interpreter's teardown once its work is written (about 0.7 s of every
run; docs/benchmarks.md), with the same exit codes and files, and exits normally while another thread runs."""

from __future__ import annotations

import os
import sys
import threading
from importlib import import_module

import pytest

from t2v.export import decode_video

from tests import forkserver

cli_app = import_module("t2v.cli.app")  # the module (the package's `app` is the Typer program)


def run_t2v(*args, home):
    env = {**os.environ, "T2V_HOME": str(home), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1"}
    return forkserver.run_t2v(args, env=env)


def test_the_program_writes_everything_and_keeps_its_exit_codes(tiny_model, tmp_path):
    out = tmp_path / "clip.mp4"
    done = run_t2v("generate", "a red square", "--model", tiny_model, "--frames", 4, "--steps", 2, "--seed", 1,
                   "-o", out, home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "clip.json").is_file()  # stdout flushed before the exit
    frames, _ = decode_video(out)
    assert frames.shape[0] == 4
    bad = run_t2v("generate", "a red square", "--model", tiny_model, "--steps", 0, home=tmp_path / "home")
    assert bad.returncode == 2 and "num_inference_steps" in bad.stderr


def test_quick_exit_ends_the_process_only_when_nothing_else_runs(monkeypatch):
    ended = []
    monkeypatch.setattr(cli_app.os, "_exit", lambda code: ended.append(code))
    monkeypatch.setattr(cli_app.sys, "gettrace", lambda: None)
    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    # The threads this test controls only: an earlier test in the same worker process may leave one of its own.
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.main_thread()])
    cli_app.quick_exit(2)
    assert ended == [2]
    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # a non-daemon thread: a server's, say
    worker.start()
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.main_thread(), worker])
    try:
        with pytest.raises(SystemExit) as e:
            cli_app.quick_exit(3)
        assert e.value.code == 3 and ended == [2]  # a normal exit, which waits for the thread
    finally:
        release.set()
        worker.join()
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.main_thread()])
    cli_app.quick_exit(None)
    cli_app.quick_exit("error text")
    assert ended == [2, 0, 1]
