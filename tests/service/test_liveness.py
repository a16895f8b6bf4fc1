"""A job held by a process that is gone from this machine goes back to the queue at once (t2v.service.liveness);
one held by a live process, a stopped one or another machine's waits for the heartbeat timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from t2v.service import build_services, liveness
from t2v.store.claims import WORKER_STOPPED
from tests.api.conftest import make_settings

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")


def id_of(pid: int, index: int = 0) -> str:
    """The worker id process ``pid`` would give itself."""
    return f"host:{pid}:{index}:1:{liveness.machine_key()}.{liveness.process_state(pid)[1]}"


def wait_state(pid: int, states: str) -> None:
    deadline = time.time() + 10
    while (liveness.process_state(pid) or ("gone",))[0] not in states and time.time() < deadline:
        time.sleep(0.02)


def test_a_worker_id_names_its_process_and_fits_the_column(monkeypatch):
    wid = liveness.worker_id(3)
    host, pid, index, _, proc = wid.split(":")
    assert (int(pid), index) == (os.getpid(), "3") and proc.split(".") == [liveness.machine_key(),
                                                                           liveness.process_state(os.getpid())[1]]
    assert liveness.gone_here([wid]) == []  # this process is alive
    monkeypatch.setattr(liveness.socket, "gethostname", lambda: "a-pod-name-" + "x" * 60)  # up to 63 in Kubernetes
    long = liveness.worker_id(12)
    assert len(long) == liveness.WIDTH and long.startswith("a-pod-name-") and liveness.gone_here([long]) == []


def test_gone_is_a_process_that_exited_a_zombie_or_another_process_under_its_pid():
    child = subprocess.Popen(["sleep", "60"])
    running = id_of(child.pid)
    reused = f"host:{child.pid}:0:1:{liveness.machine_key()}.1"  # the same pid, started at another time
    try:
        child.send_signal(signal.SIGSTOP)  # stopped, as a hung process: alive, the heartbeat decides
        wait_state(child.pid, "T")
        assert liveness.gone_here([running]) == [] and liveness.gone_here([reused]) == [reused]
        child.send_signal(signal.SIGCONT)
        child.kill()
        wait_state(child.pid, "Z")  # killed, not yet reaped
        assert liveness.gone_here([running, running]) == [running]
    finally:
        child.kill()
        child.wait()
    assert liveness.gone_here([running]) == [running]  # reaped: no such process
    # another machine's worker, a worker id without its process, garbage: only the heartbeat can tell
    other = f"elsewhere:{child.pid}:0:1:0123456789.{liveness.process_state(os.getpid())[1]}"
    assert liveness.gone_here([other, f"old-host:{child.pid}:0:123", "x:y:z:w:v", None, ""]) == []


def test_a_service_requeues_a_dead_processs_job_at_once_and_leaves_the_live_ones(tmp_path, tiny_model):
    """Heartbeats an hour long: only the process check can take a job back here."""
    svc = build_services(make_settings(tmp_path / "home", tiny_model, stale_after_s=3600, max_attempts=3),
                         no_workers=True)
    try:
        dead, live = (svc.submit({"prompt": p, "num_frames": 8, "width": 32, "height": 32})[0].id
                      for p in ("dead", "live"))
        child = subprocess.Popen(["sleep", "60"])
        dead_worker, live_worker = id_of(child.pid), id_of(os.getpid())
        assert svc.repo.claims.claim_next(dead_worker).id == dead
        assert svc.repo.claims.claim_next(live_worker).id == live
        assert sorted(svc.repo.claims.running_workers()) == sorted([dead_worker, live_worker])
        assert svc.requeue_lost() == []  # both processes run
        child.kill()
        child.wait()
        assert svc.requeue_lost() == [dead]
        job = svc.repo.get_job(dead)
        assert (job.status, job.worker_id, job.attempts) == ("queued", None, 1)
        assert job.error == f"attempt 1 of 3 failed: {WORKER_STOPPED}; retrying"  # a try used, as a stale one
        assert svc.repo.get_job(live).status == "running" and svc.repo.claims.running_workers() == [live_worker]
    finally:
        svc.stop()
