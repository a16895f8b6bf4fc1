"""Fresh virtualenvs for the tests that install a package the way a user would, away from t2v's own environment.

They are made and filled with uv where the dev install has it (scripts/setup.sh installs it into .venv): a
virtualenv in about 0.3 s and a package with its dependencies in about 2 s, where ``python -m venv`` and pip take
about 4 and 7 s on 2 cores. Both install the same way (PEP 517 builds of the source, the same index); where uv is
missing, venv and pip do it. A package index that cannot be reached skips the test, except under CI=true, where
it fails naming the index."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: uv beside this interpreter (.venv/bin/uv), or None.
UV = shutil.which("uv", path=str(Path(sys.executable).parent))

OFFLINE = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
           "No matching distribution found", "Could not find a version that satisfies",  # pip
           "Failed to fetch", "dns error", "error sending request")  # uv


def clean_env() -> dict[str, str]:
    """The environment without this virtualenv's marks, so a child venv sees only its own packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def new_venv(path: Path) -> Path:
    """A new empty virtualenv at ``path``; its python."""
    command = [UV, "venv", "-q", "--python", sys.executable, str(path)] if UV else [sys.executable, "-m", "venv", str(path)]
    subprocess.run(command, check=True, env=clean_env(), timeout=300)
    return path / "bin" / "python"


def _run(command: list[str], what: str, cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=600)
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    if any(s in output for s in OFFLINE):
        message = f"{what} needs the package index, which cannot be reached: {output[-400:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pytest.fail(f"{what} failed:\n{output[-3000:]}")


def install(python: Path, *specs: str, cwd: Path) -> None:
    """Install ``specs`` (requirements or source folders) with their dependencies into ``python``'s venv."""
    if UV:
        _run([UV, "pip", "install", "-q", "--python", str(python), *specs], f"uv pip install {specs[0]}", cwd)
    else:
        _run([str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q", *specs],
             f"pip install {specs[0]}", cwd)


def installed(python: Path) -> set[str]:
    """The normalized names of the distributions in ``python``'s venv."""
    command = ([UV, "pip", "list", "--python", str(python), "--format", "json"] if UV else
               [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"])
    listed = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=120, check=True)
    return {re.sub(r"[-_.]+", "-", d["name"]).lower() for d in json.loads(listed.stdout)}


def build_wheel(source: Path, out: Path) -> Path:
    """A wheel of the project at ``source`` in ``out``, built with the build backend this venv has (as
    ``python -m build --no-isolation``: no second environment to set up)."""
    done = subprocess.run([sys.executable, "-m", "build", "-q", "--no-isolation", "--wheel", "--outdir", str(out),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return wheel
