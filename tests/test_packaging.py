"""What ``pip install t2v`` brings, and the wheel a user installs: built, checked by twine, carrying t2v-shapes
and the t2v_client package, and making the README's first video in a fresh virtual environment that holds only
t2v's core dependencies (no extra), where a command whose extra is missing exits 2 naming the pip install."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from t2v.export import decode_video
from t2v.extras import install_hint

ROOT = Path(__file__).resolve().parents[1]
#: What a CPU user who wants the library and the CLI must not pay for: web servers, a web UI, databases, a
#: cluster, plotting, dataframes, OpenCV.
NOT_IN_CORE = {"fastapi", "uvicorn", "starlette", "gradio", "sqlalchemy", "alembic", "python-multipart", "matplotlib",
               "pandas", "opencv-python-headless", "opencv-python", "ray", "psycopg", "boto3", "pymongo",
               "standardwebhooks", "prometheus-client", "sv-ttk"}
pytestmark = pytest.mark.slow


def load_sizes():
    """benchmarks/install_sizes.py, which resolves an install from the installed packages' metadata."""
    spec = importlib.util.spec_from_file_location("install_sizes", ROOT / "benchmarks" / "install_sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sizes = load_sizes()
norm, closure = sizes.norm, sizes.closure


def core_requirements() -> list[str]:
    return sizes.requirements_of(None)


def test_the_core_install_brings_no_server_ui_database_cluster_or_opencv():
    core = closure(core_requirements())
    assert {"torch", "diffusers", "transformers", "av", "typer", "httpx", "httpx-sse"} <= core
    assert not core & NOT_IN_CORE, sorted(core & NOT_IN_CORE)
    serve = sizes.resolved("serve")
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic"} <= serve and "gradio" not in serve


def test_the_client_distribution_needs_no_torch():
    text = (ROOT / "clients" / "python" / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    names = {norm(Requirement(d.strip().strip('",')).name) for d in deps.split("\n") if d.strip().strip(",")}
    assert names == {"httpx", "httpx-sse", "pydantic"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out),
                           str(ROOT)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_the_wheel_and_sdist_pass_twine_check_and_carry_the_model_and_the_client(dist):
    wheel, sdist = next(dist.glob("t2v-*.whl")), next(dist.glob("t2v-*.tar.gz"))
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count("PASSED") == 2, done.stdout + done.stderr
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("t2v/assets/t2v-shapes/model_index.json", "t2v/assets/t2v-shapes/unet/config.json",
                   "t2v_client/__init__.py", "t2v/store/migrations/env.py"):
        assert needed in names, needed
    for folder in ("t2v-shapes", "t2v-shapes-v5", "t2v-shapes-v4"):  # the shipped model and the versions kept for old records
        assert any(n.startswith(f"t2v/assets/{folder}/unet/diffusion_pytorch_model") for n in names), folder
        assert f"t2v/assets/{folder}/vae/config.json" in names, folder


def core_site(where: Path) -> Path:
    """A folder of links to the installed core dependencies (and nothing else): what a fresh ``pip install t2v``
    would put beside t2v, without downloading it again."""
    site = where / "core-site"
    site.mkdir()
    for name in closure(core_requirements()):
        dist = metadata.distribution(name)
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src = base / top
            if src.exists() and not (site / top).exists() and not top.endswith(".pth") and top != "__pycache__":
                (site / top).symlink_to(src)
    return site


def test_the_wheel_in_a_fresh_venv_with_only_core_dependencies_makes_the_first_video(dist, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "core-dependencies.pth").write_text(str(core_site(tmp_path)) + "\n")
    wheel = next(dist.glob("t2v-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(T2V_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", T2V_OFFLINE="1")
    t2v = str(venv / "bin" / "t2v")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import t2v, t2v_client, t2v.client; print(t2v.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.returncode == 0 and str(venv) in where.stdout, where.stderr  # the wheel's t2v, not the checkout's
    for missing in ("fastapi", "gradio", "sqlalchemy", "cv2", "matplotlib"):
        probe = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {missing}"], capture_output=True, env=env,
                               timeout=60)
        assert probe.returncode != 0, f"{missing} is importable in the core venv"
    done = subprocess.run([t2v, "generate", "a red circle moving right", "--model", "t2v-shapes", "-o", "circle.mp4"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    frames, _ = decode_video(tmp_path / "circle.mp4")
    assert frames.shape == (8, 64, 64, 3) and (tmp_path / "circle.json").is_file()
    serve = subprocess.run([t2v, "serve", "--model", "t2v-shapes"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=300)
    assert serve.returncode == 2 and install_hint("serve") in serve.stderr, serve.stderr[-2000:]
    assert "Traceback" not in serve.stderr
    # each other command whose extra is missing: exit 2, one line naming the pip install, no traceback
    for args, extra in ((["ui", "--model", "t2v-shapes"], "serve"), (["jobs", "list"], "serve"),
                        (["post", "circle.mp4", "--interpolate", "2", "--interpolation", "flow", "-o", "i.mp4"], "post")):
        done = subprocess.run([t2v, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and install_hint(extra) in done.stderr, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and len(lines) <= 2, (args, done.stderr[-2000:])
        assert not (tmp_path / "i.mp4").exists(), "no partial file"
