"""The Ray executor: job workers as Ray actors across a cluster's machines (the ``ray`` extra).

Each actor is a headless t2v worker process: it builds its own :class:`~t2v.service.JobService` over the
same job store and artifact store, with one worker thread (through the composition root's ``build_services``, which
the executor is given), keeps its models warm, and claims jobs exactly
as local workers do (lease, heartbeat, ``SKIP LOCKED``). Nothing about a job lives in an actor: a killed
actor (or a lost node) stops heartbeating, any process's janitor puts its job back in the queue, and the
next worker resumes it from the checkpoint in the artifact store.

- Placement: ``num_gpus`` per actor (``T2V_RAY_GPUS_PER_WORKER``, default 1) when the cluster has GPUs,
  else ``num_cpus`` (``T2V_RAY_CPUS_PER_WORKER``); ``T2V_RAY_DEVICE=gpu`` always asks for GPUs (a cluster
  that scales up from no GPU nodes).
- Count: ``--workers N``; by default one actor per GPU slot, followed as nodes join (Ray's autoscaler or
  ``ray start`` on a new machine), up to ``T2V_RAY_MAX_WORKERS``. Queued jobs are also asked of the
  autoscaler (``request_resources``), so a cluster with an autoscaler grows to meet the queue.
- Actors restart themselves (``max_restarts=-1``) and are named ``t2v-worker-<n>`` in the Ray namespace
  ``T2V_RAY_NAMESPACE``; each job's record names the node and actor that ran it (``ran_on``).
- Ray's usage reporting is switched off in this process and in the actors.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from t2v.errors import T2VError
from t2v.extras import install_hint
from t2v.models.device import set_threads
from t2v.service.netguard import is_loopback
from t2v.service.ports import WorkerState
from t2v.settings import Settings
from t2v.store import default_database_url

if TYPE_CHECKING:
    from t2v.service.service import JobService

logger = logging.getLogger(__name__)

NO_USAGE_STATS = {"RAY_USAGE_STATS_ENABLED": "0"}
STATE_TIMEOUT_S = 2.0
MONITOR_INTERVAL_S = 5.0


class RayUnavailable(T2VError):
    """Ray is not installed, or the cluster at the address cannot be reached."""


def import_ray():
    os.environ.update(NO_USAGE_STATS)  # before ray is imported: no usage reports from this process
    try:  # ray is optional (t2v[ray]) and slow to import: only for the Ray executor
        import ray
    except ImportError:
        raise RayUnavailable(f"the Ray executor needs Ray: {install_hint('ray')}") from None
    return ray


def connect(address: str | None, namespace: str) -> Any:
    """Join the Ray cluster at ``address`` (``HOST:6379``, ``ray://HOST:10001`` or ``auto``); a clear error when
    it cannot be reached. Without an address a private local cluster is started (for trying it on one machine)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kw: dict[str, Any] = {"namespace": namespace, "runtime_env": {"env_vars": dict(NO_USAGE_STATS)},
                          "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        check_reachable(address, ray.util.get_node_ip_address)
    else:
        kw["include_dashboard"] = False
    try:
        ray.init(address=address or None, **kw)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise unreachable(address, str(e)) from None
    return ray


def unreachable(address: str | None, why: str) -> RayUnavailable:
    return RayUnavailable(f"could not reach the Ray cluster at {address or 'a new local cluster'}: {why}. Start one "
                          "with `ray start --head --disable-usage-stats` and pass its address (--ray-address "
                          "HOST:6379, or T2V_RAY_ADDRESS)")


def check_reachable(address: str, node_ip=None, timeout_s: float = 5.0) -> None:
    """Open a TCP connection to ``address``'s GCS or client port first: Ray itself retries an unreachable
    address for minutes. Ray reads a loopback host as this machine's own address (``node_ip()``), so both
    are tried."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise RayUnavailable(f"ray_address: {address!r} is not HOST:PORT, ray://HOST:PORT or auto "
                             "(e.g. 127.0.0.1:6379)")
    hosts = [host, node_ip()] if node_ip is not None and is_loopback(host) else [host]
    why = ""
    for h in hosts:
        try:
            socket.create_connection((h, port), timeout=timeout_s).close()
            return
        except OSError as e:
            why = e.strerror or str(e)
    raise unreachable(address, why)


class WorkerHost:
    """The body of one Ray actor: a :class:`JobService` with one worker thread (and a janitor) in the actor's
    process, made by ``build`` (:func:`t2v.service.compose.build_services`). Built again from its arguments when Ray
    restarts the actor."""

    def __init__(self, settings_fields: dict[str, Any], database_url: str | None, model: str | None,
                 name: str, build: Callable[..., JobService]) -> None:
        ray = import_ray()
        ctx = ray.get_runtime_context()
        self.where = {"executor": "ray", "node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                      "actor_id": ctx.get_actor_id(), "actor_name": name,
                      "restarted": bool(ctx.was_current_actor_reconstructed)}
        settings = Settings(**settings_fields)
        if settings.threads:
            set_threads(settings.threads)
        self.service = build(settings, workers=1, executor="threads", database_url=database_url, where=self.where)
        self.service.start()
        if model:
            self.service.warm(model)

    def state(self) -> dict[str, Any]:
        ready = self.service.ready(detail=False)
        states = self.service.executor.states()
        return {"alive": bool(ready["workers_alive"]), "job": states[0].job if states else None,
                "where": self.where, "warm": dict(self.service.warm_state)}

    def warm(self, model: str) -> None:
        self.service.warm(model)

    def stop(self, timeout: float = 30.0) -> None:
        """A running job saves its checkpoint and goes back to the queue (as at a local shutdown)."""
        self.service.stop(timeout)


class RayExecutor:
    kind = "ray"
    in_process = False

    def __init__(self, settings, *, address: str | None = None, workers: int | None = None,
                 database_url: str | None = None, build: Callable[..., JobService] | None = None) -> None:
        """``build``: what each actor builds its service with (:func:`t2v.service.compose.build_services`, which
        makes this executor)."""
        self.settings = settings
        self.build = build
        self.address = address if address is not None else settings.ray_address
        self.fixed = workers  # None: one actor per GPU slot, followed as the cluster changes
        self.database_url = database_url
        self.model: str | None = None
        self.actors: list[Any] = []
        self.ray: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self._states: tuple[float, list[WorkerState]] = (0.0, [])
        self._asked = 0  # worker slots last asked of the autoscaler
        self._named = 0  # actors made so far: names are never reused (a dropped actor's may still be taken)

    # -- the cluster ---------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster now (``t2v serve`` calls this before it binds, so a wrong address stops it at start)."""
        if self.ray is None:
            self.ray = connect(self.address, self.settings.ray_namespace)

    def uses_gpus(self) -> bool:
        """Whether new actors ask for GPUs: always with T2V_RAY_DEVICE=gpu (a cluster that scales from zero
        GPU nodes gets one for the pending actor), never with cpu, and with auto when the cluster has one now."""
        if self.settings.ray_device != "auto":
            return self.settings.ray_device == "gpu"
        return self.ray.cluster_resources().get("GPU", 0) >= self.settings.ray_gpus_per_worker

    def desired(self) -> int:
        """How many actors the cluster should hold now."""
        if self.fixed is not None:
            return self.fixed
        resources = self.ray.cluster_resources()
        n = int(resources.get("GPU", 0) // self.settings.ray_gpus_per_worker) or 1
        return min(n, self.settings.ray_max_workers or n)

    def actor_options(self, name: str) -> dict[str, Any]:
        place = ({"num_gpus": self.settings.ray_gpus_per_worker, "num_cpus": 0} if self.uses_gpus()
                 else {"num_cpus": self.settings.ray_cpus_per_worker})
        return {**place, "name": name, "namespace": self.settings.ray_namespace, "max_restarts": -1,
                "max_task_retries": 0, "runtime_env": {"env_vars": dict(NO_USAGE_STATS)}}

    def add_actors(self, n: int) -> None:
        remote = self.ray.remote(WorkerHost)
        fields = self.settings.model_dump()
        with self._lock:
            for _ in range(n):
                name = f"t2v-worker-{os.getpid()}-{self._named}"
                self._named += 1
                self.actors.append(remote.options(**self.actor_options(name)).remote(
                    fields, self.database_url, self.model, name, self.build))
        logger.info("Ray executor: %d actor(s)", len(self.actors))

    # -- Executor ------------------------------------------------------------------------------------------
    def start(self, service: JobService) -> None:
        if self.build is None:
            raise RayUnavailable("the Ray executor needs the composition root's build_services (build=) to start "
                                 "its actors: make it with t2v.service.build_services")
        self.connect()
        self.service = service
        if self.database_url is None:
            self.database_url = default_database_url(self.settings)
        if self.database_url.startswith("sqlite"):
            logger.warning("Ray workers share a SQLite database: this works only while every node sees the same "
                           "file; use PostgreSQL (T2V_DATABASE_URL=postgresql://...) on a real cluster")
        self.add_actors(self.desired())
        self._monitor = threading.Thread(target=self._follow_cluster, name="t2v-ray-monitor", daemon=True)
        self._monitor.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self.ray is None:
            return
        try:
            refs = [a.stop.remote(timeout) for a in self.actors]
            self.ray.wait(refs, num_returns=len(refs), timeout=timeout + 5)
        except Exception:
            logger.warning("stopping the Ray actors failed", exc_info=True)
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:
                pass
        self.actors = []
        self.ray.shutdown()

    def warm(self, service: JobService, model: str) -> None:
        self.model = model  # new and restarted actors load it as they start
        for a in self.actors:
            a.warm.remote(model)

    def states(self) -> list[WorkerState]:
        """Each actor's state (cached for a second: /readyz may be polled often); an actor that does not answer
        in time (restarting, or waiting for a node) is not alive."""
        at, cached = self._states
        if time.monotonic() - at < 1.0 or self.ray is None:
            return cached
        refs = [a.state.remote() for a in self.actors]
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=STATE_TIMEOUT_S) if refs else ([], [])
        states = []
        for ref in refs:
            try:
                s = self.ray.get(ref, timeout=0) if ref in done else None
            except Exception:
                s = None
            states.append(WorkerState(alive=s["alive"], job=s["job"], where=s["where"]) if s
                          else WorkerState(alive=False))
        self._states = (time.monotonic(), states)
        return states

    def runs(self, job_id: str) -> bool:
        return False  # actors poll the job row for cancels

    # -- following the cluster -------------------------------------------------------------------------------
    def _follow_cluster(self) -> None:
        seen = None
        while not self._stop.wait(MONITOR_INTERVAL_S):
            try:
                want = self.desired()
                if want != seen:
                    logger.info("Ray executor: the cluster wants %d actor(s); %d now", want, len(self.actors))
                    seen = want
                missing = want - len(self.actors)
                if missing > 0:
                    self.add_actors(missing)
                elif missing < 0:
                    self.drop_waiting(-missing)
                self._ask_autoscaler()
            except Exception:
                logger.warning("following the Ray cluster failed", exc_info=True)

    def drop_waiting(self, n: int) -> None:
        """Remove up to ``n`` actors that are not up (waiting for a node, or restarting): the cluster shrank, or
        counted a lost node's GPUs a while after it was gone."""
        self._states = (0.0, [])
        states = self.states()
        waiting = [a for a, st in zip(self.actors, states) if not st.alive][:n]
        with self._lock:
            for a in waiting:
                self.ray.kill(a, no_restart=True)
                self.actors.remove(a)
        if waiting:
            self._states = (0.0, [])
            logger.info("Ray executor: %d actor(s) after dropping %d waiting", len(self.actors), len(waiting))

    def _ask_autoscaler(self) -> None:
        """Ask Ray's autoscaler for one worker slot per running or queued job (up to T2V_RAY_MAX_WORKERS), so a
        cluster with an autoscaler adds nodes for a queue; a cluster without one ignores the request."""
        if self.fixed is not None or not self.settings.ray_max_workers:
            return
        counts = self.service.repo.counts_by_status()
        want = min(self.settings.ray_max_workers, counts.get("queued", 0) + counts.get("running", 0))
        if want == self._asked:
            return
        from ray.autoscaler.sdk import request_resources  # ray: optional (t2v[ray]), imported by connect() already

        unit = ({"GPU": self.settings.ray_gpus_per_worker} if self.uses_gpus()
                else {"CPU": self.settings.ray_cpus_per_worker})
        request_resources(bundles=[unit] * want)  # an empty queue clears the request: idle nodes may go
        self._asked = want
