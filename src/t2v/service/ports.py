"""The service's ports: what :class:`~t2v.service.JobService` needs from a deployment, each with a local
implementation and a distributed one, wired by :func:`t2v.service.compose.build_services`.

- :class:`JobStore`: the job table, API keys and leases (:class:`t2v.store.Repository` over SQLite or
  PostgreSQL). Workers anywhere claim from it with a lease, a heartbeat and ``SKIP LOCKED``.
- :class:`~t2v.store.artifacts.ArtifactStore`: job files, previews, posters, records, checkpoints and
  uploaded images (a local folder, or S3).
- :class:`Executor`: where jobs run: worker threads in this process
  (:class:`~t2v.service.executors.threads.ThreadExecutor`), Ray actors across machines
  (:class:`~t2v.service.executors.ray.RayExecutor`), or nowhere here (:class:`~t2v.service.executors.NoExecutor`,
  an API process beside separate workers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from t2v.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from t2v.service.service import JobService

__all__ = ["ArtifactStore", "Executor", "JobStore", "WorkerState"]


class JobStore(Protocol):
    """The part of :class:`t2v.store.Repository` the service and its workers use (all SQL lives there)."""

    engine: Any

    def create_job(self, request: dict, **kw: Any) -> tuple[Any, bool]: ...
    def get_job(self, job_id: str) -> Any: ...
    def list_jobs(self, **kw: Any) -> list: ...
    def claim_next(self, worker_id: str, *, fair_window_s: float = 0.0) -> Any: ...
    def heartbeat(self, job_id: str, worker_id: str) -> bool: ...
    def finish_job(self, job_id: str, worker_id: str, *, result: dict, files: list[dict]) -> bool: ...
    def requeue_stale(self, stale_after_s: float, *, max_attempts: int | None = None) -> list[str]: ...
    def request_cancel(self, job_id: str, *, purge: bool = False) -> Any: ...
    def is_cancel_requested(self, job_id: str) -> bool: ...
    def counts_by_status(self) -> dict[str, int]: ...


@dataclass
class WorkerState:
    """One worker as /readyz shows it: whether it is up, the job it runs, and where it runs."""

    alive: bool
    job: str | None = None
    where: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    """Runs a service's jobs: started with the service, stopped with it.

    Every executor's workers claim jobs from the job store (so cancel, purge and requeue work from any
    process) and write files to the artifact store.
    """

    #: "threads", "ray" or "none"
    kind: str
    #: Whether the workers run in this process (then this process's model cache is theirs).
    in_process: bool

    def start(self, service: JobService) -> None: ...
    def stop(self, timeout: float) -> None: ...
    def warm(self, service: JobService, model: str) -> None:
        """Load ``model`` where the workers run, before the first job asks for it."""
    def states(self) -> list[WorkerState]: ...
    def runs(self, job_id: str) -> bool:
        """Whether one of this process's workers runs ``job_id`` now (a fast path for cancel)."""
