"""The ``t2v`` program pauses the garbage collector while a run loads, and only there: from the first stage
past ``load`` (and after any failure) it collects again, with what loading made frozen; library and in-process
callers keep Python's defaults."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from t2v.cli import startup
from t2v.cli.common import Interrupt
from t2v.cli.progress import GenerationProgress
from t2v.requests import ProgressEvent


@pytest.fixture
def restore_gc():
    yield
    gc.enable()
    gc.unfreeze()


def test_a_one_shot_run_collects_again_from_the_first_stage_past_load(monkeypatch, restore_gc):
    monkeypatch.setattr(startup, "_one_shot", True)
    frozen = gc.get_freeze_count()
    with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=True) as progress:
        assert not gc.isenabled()
        progress(ProgressEvent("load", message="loading"))
        assert not gc.isenabled()
        progress(ProgressEvent("encode_prompt"))
        assert gc.isenabled() and gc.get_freeze_count() > frozen
        progress(ProgressEvent("denoise", 1, 2))
        assert gc.isenabled()
    assert gc.isenabled()


def test_a_failed_load_leaves_the_collector_on(monkeypatch, restore_gc):
    monkeypatch.setattr(startup, "_one_shot", True)
    with pytest.raises(RuntimeError):
        with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=True) as progress:
            progress(ProgressEvent("load"))
            raise RuntimeError("the model did not load")
    assert gc.isenabled()


def test_library_and_in_process_callers_keep_the_collector(restore_gc):
    assert not startup._one_shot  # only the t2v program's entry point sets it
    with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=True) as progress:
        assert gc.isenabled()
        progress(ProgressEvent("load"))
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0 or gc.isenabled()


def test_the_program_runs_its_load_without_full_collections(tiny_model, tmp_path):
    """The t2v program's entry point, as `t2v generate` runs it: no full (generation 2) collection while torch,
    diffusers and the model load (a plain process makes several), and the collector on again once it ends."""
    code = """
import gc, sys
from t2v.cli import startup
from t2v.cli.progress import GenerationProgress
seen = {"loading": 0, "later": 0}
stage = ["before"]  # parsing the command line and checking the request: not the run
enter = GenerationProgress.__enter__
def entered(self):
    stage[0] = "loading"
    return enter(self)
GenerationProgress.__enter__ = entered
real = GenerationProgress.__call__
def watch(self, event):
    real(self, event)
    stage[0] = "loading" if event.stage == "load" else "later"
GenerationProgress.__call__ = watch
gc.callbacks.append(lambda phase, info: phase == "start" and info["generation"] == 2 and stage[0] in seen
                    and seen.__setitem__(stage[0], seen[stage[0]] + 1))
def report():
    print({**seen, "enabled": gc.isenabled()}, file=sys.stderr)
sys.argv = ["t2v", "generate", "a red square", "--model", sys.argv[1], "--frames", "4", "--steps", "2", "-q",
            "-o", sys.argv[2]]
from t2v.cli.app import main
startup.one_shot()
try:
    main()
finally:
    report()
"""
    env = {**os.environ, "T2V_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(tiny_model), str(tmp_path / "c.mp4")], env=env,
                          capture_output=True, text=True, timeout=300)
    seen = eval(done.stderr.strip().splitlines()[-1])  # noqa: S307  (our own dict literal)
    assert done.returncode == 0 and (tmp_path / "c.mp4").is_file(), done.stderr
    assert seen["loading"] == 0 and seen["enabled"], done.stderr
