"""Shared fixtures: an isolated T2V_HOME, offline hub, and tiny models built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.pgserver import pg_database, pg_server  # noqa: F401  (shared fixtures)

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# The seed contract (t2v's frames = stock diffusers' in fp32) holds on every CPU only if `--dtype auto` stays
# fp32: on a CPU with native bf16 it would pick bf16. Tests of that choice pass `cpu_bf16` themselves.
os.environ["T2V_CPU_BF16"] = "0"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight ModelScope-layout model with fp16 variant files (read-only by convention)."""
    from t2v.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_sd_model(tmp_path_factory) -> Path:
    """A tiny random-weight Stable Diffusion (text-to-image) model for image mode."""
    from t2v.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd", family="sd", seed=0, fp16_variant=False)


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> Path:
    """A private copy of the tiny model that a test may damage."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model, dst)
    return dst


@pytest.fixture(autouse=True)
def t2v_env(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path / "t2v-home"
    monkeypatch.setenv("T2V_HOME", str(home))
    # API clients may name model folders only under T2V_MODEL_ROOTS: the test session's own folders.
    monkeypatch.setenv("T2V_MODEL_ROOTS", str(tmp_path_factory.getbasetemp()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("T2V_OFFLINE", "1")
    for var in ("T2V_DEVICE", "T2V_DTYPE", "T2V_MODEL", "T2V_DEFAULT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    return home


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
