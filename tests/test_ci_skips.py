"""Under CI=true a test that would skip for want of a server, a browser, a tool or an extra fails, naming it;
elsewhere it skips. Skips that depend on the machine (no CUDA device, running as root) stay skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = '''
import pytest

def test_needs_postgres():
    pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin")

@pytest.mark.gpu
def test_needs_a_gpu():
    pass

def test_needs_a_cuda_free_machine():
    pytest.skip("machine has CUDA")
'''


def pytest_in(tmp_path, name: str, text: str, ci: str) -> subprocess.CompletedProcess:
    """pytest (with this suite's CI rule, tests/ciskips.py) over one file of ``text`` in ``tmp_path``, with ``CI`` set to ``ci``."""
    (tmp_path / name).write_text(text)
    # Only the plugin under test: the installed plugins (Schemathesis, Hypothesis, xdist...) would take most of the
    # run's time to import and play no part here.
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.ciskips", "-p", "no:cacheprovider",
                           "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path / name)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_server_fails_under_ci_and_skips_elsewhere(tmp_path, ci):
    done = pytest_in(tmp_path, "test_cases.py", CASES, ci)
    tail = done.stdout.strip().splitlines()[-1]
    if ci:
        assert done.returncode == 1 and "1 failed" in tail and "2 skipped" in tail, done.stdout[-2000:]
        assert "CI=true and this test would skip" in done.stdout and "PostgreSQL server binaries" in done.stdout
    else:
        assert done.returncode == 0 and "3 skipped" in tail, done.stdout[-2000:]


MODULE_SKIP = '''
import pytest

pytest.importorskip("t2v_no_such_extra", reason="the no-such extra is not installed")


def test_never_collected():
    pass
'''


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_file_that_skips_as_it_is_collected_fails_under_ci(tmp_path, ci):
    """A module-level importorskip skips the whole file before any test runs: under CI=true that fails too."""
    done = pytest_in(tmp_path, "test_module_skip.py", MODULE_SKIP, ci)
    if ci:
        assert done.returncode != 0, done.stdout[-2000:]
        assert "CI=true and every test of test_module_skip.py would skip" in done.stdout, done.stdout[-2000:]
        assert "the no-such extra is not installed" in done.stdout
    else:
        assert done.returncode == 5 and "1 skipped" in done.stdout.strip().splitlines()[-1], done.stdout[-2000:]  # no test ran
