"""A device named explicitly that the machine lacks is refused before anything loads, naming the devices there
are; only ``auto`` chooses. A server or worker told to run jobs on such a device refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import t2v
from t2v.cli import app
from t2v.errors import InvalidRequest
from t2v.models import device as device_module
from t2v.models.device import plan_device


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_ok", lambda: False)


@pytest.mark.parametrize("asked", ["cuda", "cuda:1", "mps"])
def test_an_absent_device_is_invalid_request_naming_what_there_is(no_gpu, asked):
    with pytest.raises(InvalidRequest) as e:
        plan_device(asked)
    assert e.value.field == "device"
    assert f"{asked} is not available on this machine" in str(e.value) and "available: auto, cpu" in str(e.value)


def test_auto_and_cpu_choose_the_cpu_without_a_gpu(no_gpu):
    assert plan_device("auto").device == "cpu" and plan_device("cpu").device == "cpu"
    assert plan_device("auto").warnings == ()


def test_generate_refuses_an_absent_device_before_loading(no_gpu, monkeypatch, tmp_path):
    import t2v.models.loader as loader

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded for a device the machine lacks")

    monkeypatch.setattr(loader, "load_model", no_loading)
    with pytest.raises(InvalidRequest) as e:
        t2v.generate("a red circle moving right", model="t2v-shapes", device="cuda", progress=False)
    assert e.value.field == "device" and "available: auto, cpu" in str(e.value)


def test_the_cli_exits_2_naming_the_device_and_writes_nothing(no_gpu, tmp_path):
    out = tmp_path / "x.mp4"
    r = CliRunner().invoke(app, ["generate", "a red circle moving right", "--model", "t2v-shapes", "--device", "cuda",
                                 "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert "device" in r.output and "cuda is not available" in r.output and "available: auto, cpu" in r.output
    assert "Traceback" not in r.output and not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize("command, env", [
    (["serve", "--device", "cuda", "--no-ui", "--port", "8799"], {}),
    (["worker"], {"T2V_DEVICE": "cuda"}),
])
def test_a_server_or_worker_on_an_absent_device_refuses_to_start(tmp_path, command, env):
    full = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "T2V_HOME": str(tmp_path / "home"), **env}
    done = subprocess.run([sys.executable, "-m", "t2v", *command], capture_output=True, text=True, env=full,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to start" in done.stderr and "cuda is not available on this machine" in done.stderr
    assert "Traceback" not in done.stderr
