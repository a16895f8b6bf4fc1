"""The service's ports: what :class:`~t2v.service.JobService` needs from a deployment, each with a local
implementation and a distributed one, wired by :func:`t2v.service.compose.build_services`.

- :class:`JobStore`: the job table, API keys and leases (:class:`t2v.store.Repository` over SQLite or
  PostgreSQL). Workers anywhere claim from it with a lease, a heartbeat and ``SKIP LOCKED``. It is declared by
  concern, as the repository is composed: the job rows and their webhook deliveries on the store itself
  (:class:`JobTable`, :class:`WebhookTable`), and one part per attribute (``keys``, ``claims``, ``limits``,
  ``assets``, ``outbox``, ``controls``, ``batches``). Each protocol declares exactly the methods the service and
  its workers call; each part of the service is given only the protocols it uses.
- :class:`~t2v.store.artifacts.ArtifactStore`: job files, previews, posters, records, checkpoints and
  uploaded images (a local folder, or S3).
- :class:`Executor`: where jobs run: worker threads in this process
  (:class:`~t2v.service.executors.threads.ThreadExecutor`), Ray actors across machines
  (:class:`~t2v.service.executors.ray.RayExecutor`), or nowhere here (:class:`~t2v.service.executors.NoExecutor`,
  an API process beside separate workers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from t2v.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    from t2v.service.service import JobService
    from t2v.store.assets import AssetRow
    from t2v.store.keys import ApiKeyRow
    from t2v.store.rows import JobRow

__all__ = ["ArtifactStore", "AssetTable", "BatchTable", "ClaimTable", "ControlTable", "Executor", "JobStore",
           "JobTable", "KeyTable", "LimitTable", "OutboxTable", "WebhookTable", "WorkerState"]


class JobTable(Protocol):
    """The job rows: submit, read, cancel, and a worker's progress and outcome."""

    def create_job(self, request: dict[str, Any], *, priority: int = 0, api_key_id: str | None = None,
                   idempotency_key: str | None = None, callback_url: str | None = None,
                   max_queued: int | None = None, remixed_from: str | None = None,
                   plan: dict[str, Any] | None = None) -> tuple[JobRow, bool]: ...
    def find_idempotent(self, api_key_id: str | None, key: str) -> JobRow | None: ...
    def get_job(self, job_id: str) -> JobRow | None: ...
    def list_jobs(self, *, status: str | None = None, api_key_id: str | None = None, limit: int = 20,
                  cursor: str | None = None, query: str | None = None, order: str = "desc") -> list[JobRow]: ...
    def queue_position(self, job_id: str) -> int | None: ...
    def delete_job(self, job_id: str) -> bool: ...
    def counts_by_status(self) -> dict[str, int]: ...
    def request_cancel(self, job_id: str, *, purge: bool = False) -> JobRow | None: ...
    def is_cancel_requested(self, job_id: str) -> bool: ...
    def update_progress(self, job_id: str, worker_id: str, *, stage: str | None, step: int, total: int,
                        eta_s: float | None = None) -> bool: ...
    def heartbeat(self, job_id: str, worker_id: str) -> bool: ...
    def finish_job(self, job_id: str, worker_id: str, *, result: dict[str, Any], files: list[dict[str, Any]]) -> bool: ...
    def mark_cancelled(self, job_id: str, worker_id: str) -> bool: ...


class WebhookTable(Protocol):
    """A finished job's callback delivery, leased to one process at a time."""

    def claim_webhook(self, job_id: str, owner: str, lease_s: float) -> JobRow | None: ...
    def pending_webhooks(self) -> list[JobRow]: ...
    def release_webhook(self, job_id: str, owner: str) -> bool: ...
    def start_webhook_attempt(self, job_id: str, owner: str, lease_s: float) -> int | None: ...
    def end_webhook_attempt(self, job_id: str, owner: str, status: str, *, error: str | None = None,
                            hold_s: float | None = None) -> bool: ...


class KeyTable(Protocol):
    """API keys (``store.keys``): stored as hashes, with their limits and webhook secrets."""

    def create_key(self, name: str, key_hash: str, prefix: str, *, rate_limit: str | None = None,
                   max_queued: int | None = None, max_cost: int | None = None, webhook_secret: str | None = None,
                   max_running: int | None = None, max_priority: int | None = None) -> ApiKeyRow: ...
    def list_keys(self) -> list[ApiKeyRow]: ...
    def get_key(self, key_id: str) -> ApiKeyRow | None: ...
    def get_key_by_hash(self, key_hash: str) -> ApiKeyRow | None: ...
    def revoke_key(self, key_id: str) -> bool: ...
    def rotate_webhook_secret(self, key_id: str, secret: str, previous_until: datetime) -> bool: ...


class ClaimTable(Protocol):
    """The queue as workers see it (``store.claims``): claim with a lease, retry, fail, requeue."""

    def claim_next(self, worker_id: str, *, fair_window_s: float = 0.0,
                   priority_across_keys: bool = False) -> JobRow | None: ...
    def fail_job(self, job_id: str, worker_id: str, error: str) -> bool: ...
    def retry_job(self, job_id: str, worker_id: str, error: str, *, max_attempts: int) -> str | None: ...
    def requeue_stale(self, stale_after_s: float, *, max_attempts: int | None = None,
                      dead_workers: list[str] | tuple[str, ...] = ()) -> list[str]: ...
    def running_workers(self) -> list[str]: ...
    def requeue_worker(self, worker_id: str) -> list[str]: ...


class LimitTable(Protocol):
    """State shared between server processes (``store.limits``): rate tokens, stream leases, pending purges."""

    def take_rate_token(self, api_key_id: str, count: int, per_s: float) -> float | None: ...
    def acquire_stream(self, api_key_id: str, cap: int, lease_s: float) -> str | None: ...
    def renew_stream(self, lease_id: str, lease_s: float) -> bool: ...
    def release_stream(self, lease_id: str) -> bool: ...
    def pending_purges(self) -> list[str]: ...
    def purge_done(self, job_id: str) -> bool: ...


class AssetTable(Protocol):
    """Uploaded assets' rows (``store.assets``); their bytes are in the artifact store."""

    def add_asset(self, *, asset_id: str, api_key_id: str | None, sha256: str, filename: str, content_type: str,
                  size: int, width: int, height: int, path: str) -> AssetRow: ...
    def get_asset(self, asset_id: str, owner: str | None = None) -> AssetRow | None: ...
    def find_asset(self, owner: str | None, sha256: str) -> AssetRow | None: ...
    def delete_asset(self, asset_id: str, owner: str | None = None) -> AssetRow | None: ...
    def delete_key_assets(self, api_key_id: str) -> list[AssetRow]: ...


class OutboxTable(Protocol):
    """Finished jobs' records waiting for the record store (``store.outbox``)."""

    def pending_records(self, limit: int = 50) -> list[JobRow]: ...
    def mark_records_sent(self, job_ids: list[str]) -> int: ...
    def iter_finished(self, batch: int = 200) -> Iterator[JobRow]: ...


class ControlTable(Protocol):
    """Steering queued and running jobs (``store.controls``): change, pause, resume, and the worker's checks."""

    def change_queued(self, job_id: str, *, priority: int | None = None,
                      request: dict[str, Any] | None = None, plan: dict[str, Any] | None = None) -> JobRow: ...
    def pause(self, job_id: str) -> JobRow: ...
    def resume(self, job_id: str) -> JobRow: ...
    def is_pause_requested(self, job_id: str) -> bool: ...
    def stop_asked(self, job_id: str) -> bool: ...


class BatchTable(Protocol):
    """Batches of jobs queued in one transaction (``store.batches``)."""

    def create_batch(self, requests: list[dict[str, Any]], *, priority: int = 0, api_key_id: str | None = None,
                     idempotency_key: str | None = None, max_queued: int | None = None,
                     plans: list[dict[str, Any] | None] | None = None) -> tuple[str, bool]: ...
    def get_batch(self, batch_id: str) -> dict[str, Any] | None: ...


class JobStore(JobTable, WebhookTable, Protocol):
    """The whole store the service is built on (:class:`t2v.store.Repository`; all SQL lives there): the job rows
    and webhook deliveries on itself, the other concerns as parts."""

    engine: Any
    keys: KeyTable
    claims: ClaimTable
    limits: LimitTable
    assets: AssetTable
    outbox: OutboxTable
    controls: ControlTable
    batches: BatchTable


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
