"""The local executor: worker threads in this process, sharing its model cache (one per GPU)."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from t2v.service.ports import WorkerState
from t2v.service.worker import Worker

if TYPE_CHECKING:
    from t2v.service.service import JobService


class ThreadExecutor:
    """``workers`` :class:`~t2v.service.worker.Worker` threads. ``where`` is added to what each worker
    writes in its jobs' records (``ran_on``): a Ray actor passes its node and actor ids."""

    kind = "threads"
    in_process = True

    def __init__(self, workers: int = 1, *, where: dict[str, Any] | None = None) -> None:
        self.n_workers = workers
        self.where = {"executor": self.kind, "host": socket.gethostname(), "pid": os.getpid(), **(where or {})}
        self.workers: list = []

    def start(self, service: JobService) -> None:
        self.workers = [Worker(service, i, where=self.where) for i in range(self.n_workers)]
        for w in self.workers:
            w.start()

    def stop(self, timeout: float) -> None:
        for w in self.workers:
            w.join(timeout)

    def warm(self, service: JobService, model: str) -> None:
        service.warm_here(model)

    def states(self) -> list[WorkerState]:
        return [WorkerState(alive=w.is_alive(), job=w.current, where={**self.where, "worker": w.worker_id})
                for w in self.workers]

    def runs(self, job_id: str) -> bool:
        return any(w.current == job_id for w in self.workers)


class NoExecutor:
    """No workers in this process (``t2v serve --no-workers``): jobs are queued in the database for workers
    elsewhere (``t2v worker``, or Ray actors started by another process). Its janitor still requeues
    jobs whose worker died and carries out pending purges."""

    kind = "none"
    in_process = False

    def start(self, service: JobService) -> None:
        pass

    def stop(self, timeout: float) -> None:
        pass

    def warm(self, service: JobService, model: str) -> None:
        pass

    def states(self) -> list[WorkerState]:
        return []

    def runs(self, job_id: str) -> bool:
        return False
