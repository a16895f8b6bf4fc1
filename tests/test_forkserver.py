"""The test servers' fork server (tests/forkserver.py) gives each start a process of its own that behaves as a
new ``python -m t2v`` does: its own pid, the test's arguments, environment, folder and log, its exit code, and
signals that reach it alone."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from t2v.desktop.local import free_port
from tests.forkserver import FORKS, ForkedProcess, import_time_env, start_t2v
from tests.web import HTTP


def env_for(tmp_path, **extra) -> dict[str, str]:
    return {**os.environ, "T2V_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1",
            "T2V_UI": "0", **extra}


def test_a_fork_runs_the_command_with_its_arguments_environment_and_log(tmp_path):
    log = tmp_path / "out.log"
    proc = start_t2v(["models", "list"], env_for(tmp_path, T2V_LOG_LEVEL="ERROR"), log)
    assert isinstance(proc, ForkedProcess) and proc.pid != os.getpid()
    assert proc.wait(120) == 0, log.read_text()
    assert "t2v-shapes" in log.read_text()
    bad = start_t2v(["generate", "--width", "7"], env_for(tmp_path), log, append=True)
    assert bad.wait(120) == 2  # the usage error's code, as from `python -m t2v`
    assert "t2v-shapes" in log.read_text()  # appended, not truncated


def test_a_forked_server_answers_and_dies_of_the_signal_it_is_sent(tmp_path):
    port = free_port()
    proc = start_t2v(["serve", "--port", str(port), "--no-workers"], env_for(tmp_path), tmp_path / "serve.log")
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            if HTTP.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.2)
    proc.send_signal(signal.SIGSTOP)  # it alone stops: the fork server still starts others
    other = start_t2v(["models", "list"], env_for(tmp_path), tmp_path / "other.log")
    assert other.wait(120) == 0
    proc.kill()
    assert proc.wait(30) == -signal.SIGKILL
    assert (tmp_path / "home" / "t2v.db").exists()  # the server used the test's T2V_HOME


def test_each_set_of_import_time_variables_has_a_fork_server_of_its_own(tmp_path):
    envs = [env_for(tmp_path, OMP_NUM_THREADS=n) for n in ("1", "2")]
    one, two = (start_t2v(["models", "list"], env, tmp_path / f"{i}.log") for i, env in enumerate(envs))
    assert one.wait(120) == 0 and two.wait(120) == 0
    keys = {tuple(sorted(import_time_env(e).items())) for e in envs}
    assert len(keys) == 2 and keys <= set(FORKS)
    assert import_time_env({"T2V_HOME": "x", "PATH": "y"}) == import_time_env({})  # t2v's own variables are read later
