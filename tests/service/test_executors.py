"""Executors and the composition root, in process: which executor the settings pick, how the Ray executor sizes and
places its actors (a stand-in for the cluster's resource figures), its address checks, a --no-workers service,
and the ``ran_on`` of a job run by local threads."""

from __future__ import annotations

import os
import socket
import time
from types import SimpleNamespace

import pytest

from t2v.errors import InvalidRequest
from t2v.service import build_services
from t2v.service.compose import build_executor
from t2v.service.executors import NoExecutor, ThreadExecutor
from t2v.service.executors.ray import RayExecutor, RayUnavailable, check_reachable
from tests.api.conftest import SMALL, make_settings


class FakeRay:
    """The part of the ray module RayExecutor sizes actors from."""

    def __init__(self, **resources):
        self.resources = resources

    def cluster_resources(self):
        return dict(self.resources)


def ray_executor(settings, ray, workers=None) -> RayExecutor:
    ex = RayExecutor(settings, workers=workers)
    ex.ray = ray
    return ex


def test_the_settings_pick_the_executor(tmp_path, tiny_model):
    s = make_settings(tmp_path / "home", tiny_model)
    assert isinstance(build_executor(s), ThreadExecutor) and build_executor(s, workers=3).n_workers == 3
    assert isinstance(build_executor(s, no_workers=True), NoExecutor)
    ex = build_executor(make_settings(tmp_path / "home", tiny_model, executor="ray", ray_address="10.0.0.1:6379"))
    assert isinstance(ex, RayExecutor) and ex.address == "10.0.0.1:6379" and ex.ray is None  # not connected yet
    with pytest.raises(InvalidRequest, match="executor: must be one of threads, ray, not 'dask'"):
        build_executor(s, executor="dask")
    with pytest.raises(InvalidRequest, match="workers: must be at least 1"):
        build_executor(s, workers=0)


def test_ray_actors_follow_the_clusters_gpus(tmp_path, tiny_model):
    s = make_settings(tmp_path / "home", tiny_model)
    assert ray_executor(s, FakeRay(CPU=16, GPU=4)).desired() == 4  # one per GPU
    assert ray_executor(s, FakeRay(CPU=8)).desired() == 1  # no GPU: one CPU worker unless told
    assert ray_executor(s, FakeRay(CPU=8, GPU=8), workers=3).desired() == 3  # --workers wins
    two = make_settings(tmp_path / "home", tiny_model, ray_gpus_per_worker=2, ray_max_workers=3)
    assert ray_executor(two, FakeRay(GPU=5)).desired() == 2
    assert ray_executor(two, FakeRay(GPU=16)).desired() == 3  # capped by T2V_RAY_MAX_WORKERS

    gpu = ray_executor(s, FakeRay(CPU=4, GPU=2)).actor_options("t2v-worker-1-0")
    assert (gpu["num_gpus"], gpu["num_cpus"], gpu["max_restarts"], gpu["namespace"]) == (1.0, 0, -1, "t2v")
    assert gpu["runtime_env"]["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    cpu = ray_executor(make_settings(tmp_path / "home", tiny_model, ray_cpus_per_worker=4),
                       FakeRay(CPU=8)).actor_options("w")
    assert cpu["num_cpus"] == 4 and "num_gpus" not in cpu
    # T2V_RAY_DEVICE=gpu: actors ask for a GPU on a cluster that has none yet (the autoscaler adds a GPU node)
    waiting = ray_executor(make_settings(tmp_path / "home", tiny_model, ray_device="gpu"), FakeRay(CPU=8))
    assert waiting.actor_options("w")["num_gpus"] == 1.0 and waiting.desired() == 1
    forced = ray_executor(make_settings(tmp_path / "home", tiny_model, ray_device="cpu"), FakeRay(CPU=8, GPU=2))
    assert "num_gpus" not in forced.actor_options("w")


def test_build_services_is_the_one_composition_root(tmp_path, tiny_model):
    """JobService takes its ports; build_services opens them, and the service's parts share them."""
    from t2v.service import JobService
    from t2v.service.compose import build_services as root

    settings = make_settings(tmp_path / "home", tiny_model)
    with pytest.raises(TypeError):
        JobService(settings)  # no store, artifacts or executor of its own
    svc = build_services(settings, no_workers=True)
    try:
        # Each part holds only the store parts it uses, all of the service's one store.
        assert svc.access.jobs is svc.postjobs.jobs is svc.steering.jobs is svc.batches.jobs is svc.repo
        assert svc.access.keys is svc.repo.keys and svc.access.limits is svc.repo.limits
        assert svc.assets.rows is svc.repo.assets and svc.steering.controls is svc.batches.controls is svc.repo.controls
        assert svc.assets.files is svc.postjobs.files is svc.files and svc.postjobs.assets is svc.assets
        assert isinstance(svc.executor, NoExecutor)
        row, _ = svc.access.create_key("ci")  # reached through the part that owns it
        assert not hasattr(svc, "create_key") and not hasattr(svc.repo, "create_key")  # no façade forwards it
        assert svc.access.has_keys() and [k.id for k in svc.access.list_keys()] == [row.id]
    finally:
        svc.stop(timeout=1)

    class Space(JobService):
        pass

    sub = build_services(settings, workers=2, service_class=Space, where={"node": "n1"})
    try:
        assert type(sub) is Space and sub.executor.n_workers == 2 and sub.executor.where["node"] == "n1"
    finally:
        sub.engine.dispose()
    ex = build_executor(make_settings(tmp_path / "home", tiny_model, executor="ray", ray_address="10.0.0.1:6379"))
    assert ex.build is root  # each Ray actor builds its own service through the same root
    with pytest.raises(RayUnavailable, match="build_services"):
        RayExecutor(settings).start(svc)


def test_ray_address_checks(monkeypatch):
    with pytest.raises(RayUnavailable, match="'nowhere' is not HOST:PORT, ray://HOST:PORT or auto"):
        check_reachable("nowhere")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(RayUnavailable, match=rf"could not reach the Ray cluster at 127.0.0.1:{port}"):
            check_reachable(f"127.0.0.1:{port}", timeout_s=2)
        s.listen()
        check_reachable(f"127.0.0.1:{port}")
        check_reachable(f"ray://127.0.0.1:{port}")
        # Ray reads a loopback host as the machine's own address: that one is tried too
        check_reachable(f"localhost:{port}", node_ip=lambda: "127.0.0.1")
    check_reachable("auto")


def test_a_service_without_workers_queues_for_workers_elsewhere(tmp_path, tiny_model):
    settings = make_settings(tmp_path / "home", tiny_model)
    api = build_services(settings, no_workers=True).start()
    try:
        ready = api.ready()
        assert (ready["ready"], ready["executor"], ready["workers"]) == (True, "none", 0)
        job, _ = api.submit({"prompt": "a red square", **SMALL, "seed": 1})
        time.sleep(1.0)
        assert api.get(job.id).status == "queued", "nothing runs it here"
        worker = build_services(settings, workers=1).start()  # another process's worker, on the same database
        try:
            deadline = time.time() + 120
            while api.get(job.id).status != "succeeded" and time.time() < deadline:
                time.sleep(0.1)
            done = api.get(job.id)
            assert done.status == "succeeded", done.error
            ran_on = done.result["ran_on"]
            assert ran_on["executor"] == "threads" and ran_on["pid"] > 0 and ran_on["worker"].startswith(ran_on["host"])
            assert worker.ready()["where"][0]["worker"] == ran_on["worker"]
        finally:
            worker.stop()
    finally:
        api.stop()


def test_ray_states_without_answers_are_not_alive(tmp_path, tiny_model):
    """An actor that does not answer (restarting, or waiting for a node) counts as a worker that is not alive."""
    class Silent:
        killed: list = []

        def wait(self, refs, num_returns, timeout):
            return [], refs

        def kill(self, actor, no_restart):
            self.killed.append((actor, no_restart))

    class Actor:
        state = SimpleNamespace(remote=lambda: object())

    ex = ray_executor(make_settings(tmp_path / "home", tiny_model), Silent())
    ex.actors = [Actor(), Actor()]
    assert [(w.alive, w.job) for w in ex.states()] == [(False, None), (False, None)]
    first, second = ex.actors
    ex.drop_waiting(1)  # more actors than the cluster's GPUs: one that is not up goes, for good
    assert ex.actors == [second] and ex.ray.killed == [(first, True)]


def test_ray_actor_names_are_never_reused_after_one_is_dropped(tmp_path, tiny_model):
    """Actor 0 lost with its node and dropped, actor 1 kept: the actors added when nodes join must not take the
    name of one that lives (Ray refuses a taken name, and the executor stayed at one actor: seen on CI)."""
    made = []

    class Remote:
        def options(self, name, **_):
            return SimpleNamespace(remote=lambda *a: made.append(name) or SimpleNamespace(name=name))

    class Ray(FakeRay):
        killed: list = []

        def remote(self, cls):
            return Remote()

        def wait(self, refs, num_returns, timeout):
            return [], refs

        def kill(self, actor, no_restart):
            self.killed.append(actor.name)

    ex = ray_executor(make_settings(tmp_path / "home", tiny_model), Ray(GPU=2))
    ex.add_actors(2)
    ex.actors[1].state = ex.actors[0].state = SimpleNamespace(remote=lambda: object())
    ex.drop_waiting(1)  # the first is not up: dropped
    ex.add_actors(2)  # two nodes join
    pid = os.getpid()
    assert made == [f"t2v-worker-{pid}-{i}" for i in range(4)] and ex.ray.killed == [f"t2v-worker-{pid}-0"]
    assert len({a.name for a in ex.actors}) == len(ex.actors) == 3
