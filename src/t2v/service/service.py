"""JobService: the one place front ends submit, read and cancel jobs; it owns the workers.

It owns the jobs (submit, get, list, cancel, delete, their files) and is composed of parts, each a small class of
its own over only the store protocols it uses (:mod:`t2v.service.ports`), reached through its attribute:
``access`` (API keys, rate tokens, stream leases; :mod:`t2v.service.access`), ``assets`` (uploads;
:mod:`t2v.service.assets`), ``postjobs`` (post-processing sources; :mod:`t2v.service.postjobs`), ``steering``
(change, pause, resume; :mod:`t2v.service.steering`) and ``batches`` (:mod:`t2v.service.batches`):
``service.access.create_key(...)``, ``service.steering.pause(...)``. Its ports are built by
:func:`t2v.service.compose.build_services`.
"""

from __future__ import annotations

from pathlib import Path

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from t2v.errors import InvalidRequest, JobNotFound, QuotaExceeded
from t2v.models import loader
from t2v.requests import request_from_fields
from t2v.runner.mode import mode_of
from t2v.runner.modes import generate as run_request
from t2v.runner.runtime import import_runtime, load_pipeline
from t2v.service.access import AccessService, visible_job
from t2v.service.assets import AssetService
from t2v.service.files import JobFiles
from t2v.service.liveness import gone_here
from t2v.service.limits import Admitted, admit, admit_plan, check_inline_post, check_priority, file_refs
from t2v.service.metrics import Metrics
from t2v.service.netguard import check_callback_url
from t2v.service.ports import ArtifactStore, Executor, JobStore
from t2v.service.batches import BatchService
from t2v.service.postjobs import PostService
from t2v.service.steering import SteeringService
from t2v.service.records import RecordPublisher
from t2v.service.webhooks import WebhookSender
from t2v.models.publicnames import accept_public_model, hide_server_paths, public_model
from t2v.runtime import Runtime
from t2v.settings import Settings
from t2v.store import FINISHED_STATUSES
from t2v.store.ids import is_id
from t2v.store.limits import QueueFull

logger = logging.getLogger(__name__)
WARM_COMPILE_STEPS = 2  # the warm-up compile's steps (every family's scheduler takes 2; the shape is what counts)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = FINISHED_STATUSES


#: Video fields whose clip is decoded whole (a longer video continues it); any other is cut to ``num_frames``.
WHOLE_CLIPS = frozenset({"extend"})
#: Video fields whose clip must have the output's size and length unless the request says ``fit``.
SIZED_CLIPS = frozenset({"control_video", "mask_video", "background_video"})

#: The most jobs one page of a listing holds (GET /v1/videos takes up to 200, GET /v1/records up to 500).
MAX_PAGE = 500

class JobService:
    """Submit/get/list/cancel over the job table; ``start()`` starts the executor that runs jobs.

    Build one with :func:`t2v.service.compose.build_services` (``build_services(settings)``), which opens its ports
    (:mod:`t2v.service.ports`): ``store`` (the job store), ``artifacts`` (where job files live) and ``executor``
    (where jobs run)."""

    def __init__(self, settings: Settings, *, store: JobStore, artifacts: ArtifactStore, executor: Executor,
                 runtime: Runtime | None = None) -> None:
        self.settings = settings
        #: What this process's jobs load and cache (models, dry runs, ...): built with the service's settings.
        self.runtime = runtime if runtime is not None else Runtime(settings)
        self.repo: JobStore = store
        self.engine = store.engine
        #: The job files in the artifact store (T2V_STORAGE_URL; default the folders under T2V_HOME).
        self.files = JobFiles(settings, artifacts)
        #: Where jobs run (local threads, Ray actors, or none in this process).
        self.executor = executor
        self.access = AccessService(store, store.keys, store.limits)
        self.assets = AssetService(settings, store.assets, self.files)
        self.postjobs = PostService(settings, store, self.files, self.assets)
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.steering = SteeringService(settings, store, store.controls, self.wakeup, self.prepare)
        self.batches = BatchService(settings, store, store.batches, store.controls, self.prepare, self.cancel,
                                    self.wakeup)
        #: Cancels asked in this process for jobs its own workers run: a fast path only (the job row is the truth).
        self.cancel_requested: set[str] = set()
        #: Job counts (from the database) and this process's job timings, for /metrics.
        self.metrics = Metrics(lambda: self.counts_by_status(), STATUSES)
        self._janitor: threading.Thread | None = None
        self.records = None  # a RecordPublisher while started with T2V_RECORDS_URL
        self.warm_state: dict[str, Any] = {"model": None, "done": True, "error": None}

    @property
    def workers(self) -> list:
        """This process's worker threads (none when jobs run elsewhere)."""
        return list(getattr(self.executor, "workers", []))

    # -- lifecycle -------------------------------------------------------------------------------
    def warm(self, model: str) -> None:
        """Load ``model`` where the workers run (this process, or each Ray actor) so the first job does not
        wait for it, and admit its default request once here so the first submit does not wait for the
        planner's dry run either (:meth:`plan_default`)."""
        self.executor.warm(self, model)
        self.plan_default(model)

    def plan_default(self, model: str) -> None:
        """Plan ``model``'s default request as admission does, now: a model the planner has not measured
        gets its dry run here, before the server answers (about 3 s for the tiny test model on two cores, paid
        once per model and home: the result is kept in ``$T2V_HOME/cache``), not in the first submit, which
        a client may time out on. A model that cannot be planned is reported by its jobs, not here."""
        try:
            admit(request_from_fields({"prompt": "warm-up", "model": model}), self.settings)
        except Exception as e:  # noqa: BLE001 - the jobs refuse it with their own clear message
            logger.info("could not plan %s ahead of its first job: %s", model, e)

    def warm_here(self, model: str) -> None:
        """Load ``model`` in this process, in the background, so the first job does not wait for it.

        The libraries are imported here, in the calling thread, before the warm-up thread starts: two
        threads importing diffusers at once can fail. A worker that needs the model meanwhile waits for
        this load and reuses it (the loader's cache loads one model once).
        """
        self.warm_state = {"model": model, "done": False, "error": None}
        if not self._import_runtime():
            self.warm_state.update(done=True, error="could not import the libraries that load models (see the log)")
            return

        def run() -> None:
            try:
                loaded = load_pipeline(model, device=self.settings.device, dtype=self.settings.dtype, settings=self.settings,
                                       runtime=self.runtime)
                self.warm_state["load_s"] = round(loaded.load_s, 3)
                if self.settings.compile:
                    self.compile_default(model)
            except Exception as e:  # jobs will report it with a clear message; the server stays up
                self.warm_state["error"] = str(e)
                logger.warning("could not warm %s: %s", model, e)
            finally:
                self.warm_state["done"] = True

        threading.Thread(target=run, name="t2v-warm", daemon=True).start()

    def compile_default(self, model: str) -> None:
        """With ``T2V_COMPILE=1``: run ``model``'s default request once, for
        :data:`WARM_COMPILE_STEPS` steps and no files, so its compiled blocks exist for the default shape before
        the first job (which then compiles nothing); the time it took is ``warm_state["compile_s"]``. A model or
        machine that cannot compile is logged and its jobs say why."""
        t0 = time.perf_counter()
        try:
            run_request(request_from_fields({"prompt": "warm-up", "model": model, "formats": [],
                                             "num_inference_steps": WARM_COMPILE_STEPS}), settings=self.settings)
            self.warm_state["compile_s"] = round(time.perf_counter() - t0, 3)
        except Exception as e:  # noqa: BLE001 - jobs report it with their own clear message
            self.warm_state["compile_error"] = str(e)
            logger.warning("could not compile %s ahead of its first job: %s", model, e)

    @staticmethod
    def _import_runtime() -> bool:
        """Import torch, diffusers and t2v's engine in this thread (see :func:`t2v.runner.runtime.import_runtime`).
        On failure the jobs report it (each is retried, then fails saying why); the server stays up."""
        try:
            import_runtime()
        except Exception:
            logger.exception("importing the libraries that run jobs failed")
            return False
        return True

    def start(self) -> JobService:
        self._import_runtime()  # before any worker thread starts: concurrent first imports of diffusers fail
        requeued = self.requeue_lost()
        if requeued:
            logger.info("requeued %d job(s) left running by a stopped process", len(requeued))
        self.drop_finished_checkpoints()
        self.purge_pending()  # cancelled with --purge while their process was down
        self.webhooks = WebhookSender(self)
        if self.settings.records_url:  # the outbox's publisher: records reach MongoDB in the background
            self.records = RecordPublisher(self).start()
        self.executor.start(self)
        self._janitor = threading.Thread(target=self._janitor_loop, name="t2v-janitor", daemon=True)
        self._janitor.start()
        return self

    def requeue_lost(self) -> list[str]:
        """Requeue the running jobs whose worker is lost: its process gone from this machine (seen at once), or
        silent for ``stale_after_s`` (anywhere). Returns the ids queued again."""
        dead = gone_here(self.repo.claims.running_workers())
        return self.repo.claims.requeue_stale(self.settings.stale_after_s, max_attempts=self.settings.max_attempts,
                                              dead_workers=dead)

    def drop_finished_checkpoints(self) -> None:
        """Delete checkpoints (and torn partial writes) of jobs that ended or are gone. A job's checkpoint
        is kept through failed tries so the next one resumes; one that used up its tries in a process
        that died (failed by a janitor) leaves its file here."""
        for job_id in self.files.checkpoint_job_ids():
            job = self.repo.get_job(job_id)
            if job is None or job.status in FINISHED:
                self.files.drop_checkpoint(job_id)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop workers; a running job saves a checkpoint and goes back to the queue."""
        self.stopping.set()
        self.wakeup.set()
        self.executor.stop(timeout)
        if self._janitor:
            self._janitor.join(timeout)
        if getattr(self, "webhooks", None) is not None:
            self.webhooks.close()
        if self.records is not None:
            self.records.stop()
        self.engine.dispose()

    def _janitor_loop(self) -> None:
        interval = max(0.5, self.settings.stale_after_s / 2)
        while not self.stopping.wait(interval):
            try:
                if self.requeue_lost():
                    self.wakeup.set()
                self.drop_finished_checkpoints()
                self.purge_pending()
                self.webhooks.retry_pending()
            except Exception:
                logger.exception("janitor pass failed")

    def ready(self, *, detail: bool = True, api_key=None) -> dict[str, Any]:
        """Readiness for /readyz. Without ``detail`` only counts (no job ids, models or paths: the public answer).

        With ``detail``: the loaded models, the warm-up state and the running job ids, only those of
        ``api_key`` when one is given (all of them when the server runs without keys).
        """
        states = self.executor.states()
        alive = [w for w in states if w.alive]
        busy = [w.job for w in alive if w.job]
        state: dict[str, Any] = {
            # A process without workers (--no-workers) is ready when it can queue jobs for workers elsewhere.
            "ready": (bool(alive) or self.executor.kind == "none") and bool(self.warm_state.get("done"))
            and not self.stopping.is_set(),
            "workers": len(states),
            "workers_alive": len(alive),
            "busy_workers": len(busy),
            "warm": {"done": bool(self.warm_state.get("done"))},
            "checked_at": time.time(),
        }
        if not detail:
            return state
        loaded = loader.loaded_models(self.runtime)
        if api_key is not None:  # a key sees its own running jobs, and their models as it named them: no folders
            mine = [job for jid in busy if (job := self.repo.get_job(jid)) is not None and job.api_key_id == api_key.id]
            busy = [job.id for job in mine]
            loaded = [{"model": name} for name in sorted({str(public_model(self.settings, (job.request or {}).get("model")))
                                                          for job in mine})]
        where = [{**w.where, "job": w.job} for w in alive] if api_key is None else []  # all keys' jobs: admins only
        return hide_server_paths(self.settings, {**state, "executor": self.executor.kind, "warm": dict(self.warm_state),
                                                 "models_loaded": loaded, "busy": busy, "where": where})

    # -- jobs ------------------------------------------------------------------------------------
    def submit(self, fields: dict[str, Any], *, api_key=None, idempotency_key: str | None = None, priority: int = 0,
               callback_url: str | None = None, remixed_from: str | None = None):
        """Validate and queue a job. Returns ``(job, created)``; the same idempotency key returns the same job.
        ``remixed_from``: the job this one remixes (recorded for the OpenAI-style API)."""
        _check_no_nul("idempotency_key", idempotency_key)
        key_id = api_key.id if api_key else None
        if idempotency_key and (earlier := self.repo.find_idempotent(key_id, idempotency_key)):
            self.parsed(fields)  # a malformed request is still refused
            return earlier, False  # a retried request: the same job, even when the key is now at its quota
        check_priority(priority, self.settings, api_key)
        admitted = self.prepare(fields, api_key=api_key, callback_url=callback_url)
        try:  # the quota is counted in the insert's transaction: concurrent submits cannot pass it
            job, created = self.repo.create_job(**admitted.row(), priority=priority, api_key_id=key_id,
                                                idempotency_key=idempotency_key, callback_url=callback_url,
                                                max_queued=api_key.max_queued if api_key else None,
                                                remixed_from=remixed_from)
        except QueueFull as e:
            raise QuotaExceeded(str(e), retry_after=5) from None
        if created:
            self.wakeup.set()
        return job, created

    def parsed(self, fields: dict[str, Any]):
        """The request ``fields`` make (InvalidRequest naming a bad field), the server's public model name read
        as its folder."""
        for name, value in fields.items():
            _check_no_nul(name, value)
        if "model" in fields:  # the public name of the server's own folder runs that folder
            fields = {**fields, "model": accept_public_model(self.settings, fields["model"])}
        return request_from_fields(fields)

    def prepare(self, fields: dict[str, Any], *, api_key=None, callback_url: str | None = None) -> Admitted:
        """Check a request as a submit does, all before any row is written: the request resolved (model,
        defaults and seed fixed) and the plan it is admitted with, as the job row keeps them
        (:meth:`~t2v.service.limits.Admitted.row`)."""
        _check_no_nul("callback_url", callback_url)
        request = self.parsed(fields)
        check_callback_url(callback_url, self.settings)  # 422 for internal addresses (resolved once, all checked)
        for name, kind, ref in file_refs(request):  # uploaded assets of this key, never paths
            self.assets.check_ref(ref, api_key, kind=kind, field=name)
        # Allow-listed model and LoRA, then model, defaults and the seed fixed now (restarts reproduce), then
        # the cost limits (the server's and the key's) and the memory budget.
        admitted = admit_plan(request, self.settings, api_key)
        resolved = admitted.request
        if mode_of(resolved).takes_source:  # the key's own finished job or video asset (404 for another key's)
            return replace(admitted, request=self.postjobs.check_post_source(resolved, api_key))
        self.check_clips(resolved, api_key)
        check_inline_post(resolved, self.settings, self.assets.decode_budget())
        return admitted

    def check_clips(self, resolved, api_key=None) -> None:
        """The clips a job decodes (its request's video files), measured from their containers: what decoding
        each holds must fit the budget (only the first ``num_frames`` frames of a clip the output is made from
        or fitted to; the whole of a clip a longer video continues), and a clip used as it is (a control input
        without ``fit``) must have the output's size and length; else refused (422 naming the field) before it
        is queued."""
        for name, _, ref in file_refs(resolved, "video"):
            frames = None if name in WHOLE_CLIPS else resolved.num_frames
            self.assets.check_decode(ref, api_key, field=name, frames=frames)
            if name in SIZED_CLIPS and not resolved.fit:
                self.assets.check_clip_fits(ref, api_key, field=name, width=resolved.width, height=resolved.height,
                                            frames=resolved.num_frames)

    def list(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None, api_key=None,
             query: str | None = None, order: str = "desc"):
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status: must be one of {', '.join(STATUSES)}", field="status")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit: must be between 1 and {MAX_PAGE}", field="limit")
        if cursor is not None and not is_id(cursor):  # ids only: anything else matched no job and read as the end
            raise InvalidRequest("cursor: not a cursor this server gave; pass the next_cursor of the previous page, "
                                 "or leave it out for the first page", field="cursor")
        if query and "\x00" in query:  # no stored prompt holds NUL (submit refuses it)
            return []
        if order not in ("asc", "desc"):
            raise InvalidRequest("order: asc or desc", field="order")
        return self.repo.list_jobs(status=status, api_key_id=api_key.id if api_key else None, limit=limit,
                                   cursor=cursor, query=query, order=order)

    def get(self, job_id: str, *, api_key=None):
        """The job, when ``api_key`` (a key row; None: no check) may see it; else :class:`JobNotFound` (another
        key's job reads exactly as a missing one)."""
        return visible_job(self.repo, job_id, api_key)

    def find_job(self, job_id: str):
        """The job's current row, or None once deleted. No key check and no error: for re-reading a job the
        caller was already given through :meth:`get` (a progress stream, a fresher queue state)."""
        return self.repo.get_job(job_id)

    def counts_by_status(self) -> dict[str, int]:
        """Number of jobs per status (every status present), for /metrics."""
        return self.repo.counts_by_status()

    def queue_position(self, job_id: str) -> int | None:
        return self.repo.queue_position(job_id)

    def cancel(self, job_id: str, *, purge: bool = False, api_key=None):
        """Cancel a job. The request is stored on the job row, so it works from any process: a running
        job stops at its worker's next check, wherever that runs. With ``purge`` its files go too: at
        once unless it is running, else when its worker (or, if that died, a janitor) ends it."""
        self.get(job_id, api_key=api_key)
        job = self.repo.request_cancel(job_id, purge=purge)
        if job is None:  # deleted meanwhile
            raise JobNotFound(f"no job with id {job_id}")
        if job.status == "running":
            if self.executor.runs(job_id):
                self.cancel_requested.add(job_id)  # our own worker: stop without waiting for its next poll
        elif job.purge_requested:
            self.purge_files(job_id)
            job = self.repo.get_job(job_id)
        return job

    def delete(self, job_id: str, *, api_key=None) -> None:
        """Remove a finished job: its files and its row. A queued or running job is cancelled instead."""
        job = self.get(job_id, api_key=api_key)
        if job.status not in FINISHED:
            self.cancel(job_id, purge=True, api_key=api_key)
            return
        self.files.remove(job_id)
        self.repo.delete_job(job_id)
        if self.records is not None:  # sent already, or on its way (the publisher checks again after sending)
            self.records.forget(job_id)

    def purge_files(self, job_id: str) -> None:
        """Remove a finished job's files and mark its purge done (safe to repeat, from any process)."""
        self.files.remove(job_id)
        self.repo.limits.purge_done(job_id)

    def purge_pending(self) -> None:
        """Carry out purges asked for jobs that ended elsewhere: a cancelled job whose worker died."""
        for job_id in self.repo.limits.pending_purges():
            self.purge_files(job_id)

    def file_path(self, job, fmt: str):
        """A local path with a finished job's file in ``fmt`` (or None): the stored file, or a cached copy of
        the object (see :mod:`t2v.service.files`)."""
        key = self.files.job_file_key(job, fmt)
        return self.files.local_file(key) if key else None

    def image_path(self, job_id: str, name: str):
        """The live preview (``preview.png``) or the finished clip's middle frame (``poster.png``), if written."""
        return self.files.local_file(self.files.video_key(job_id, name), fresh=name == "preview.png")

    def download(self, job, fmt: str | None = None, *, image: str | None = None):
        """How to send a job's file in ``fmt`` (or its ``image``, preview.png / poster.png): a
        :class:`t2v.service.files.Download`, or None when there is none."""
        key = self.files.video_key(job.id, image) if image else self.files.job_file_key(job, fmt or "")
        return self.files.download(key, presign=self.settings.storage_presign) if key else None

    def live_clip(self, job):
        """The clip ``job`` streams while it runs, as a :class:`t2v.service.files.Download`: the growing file
        where this machine has it (``path``), else with object storage the object uploaded after its last part;
        None when it is not running or has made no part yet."""
        return self.files.live_download(job.id) if job.status == "running" else None

    def live_local(self, job) -> Path | None:
        """:meth:`live_clip` as a local file (an object copied here as it is now), for a page that shows it."""
        live = self.live_clip(job)
        if live is None:
            return None
        return live.path if live.path is not None else self.files.local_file(live.key, fresh=True)

    def local_video(self, job):
        """A local path to ``job``'s mp4 (the stored file, or a cached copy of the object), or None."""
        key = self.files.job_file_key(job, "mp4")
        return self.files.local_file(key) if key else None

    def after_finish(self, job_id: str) -> None:
        """A worker ended ``job_id`` (succeeded, failed or cancelled): a purge asked meanwhile, by any
        process, is carried out here; then its webhook."""
        self.cancel_requested.discard(job_id)
        job = self.repo.get_job(job_id)
        if job is None or job.status not in FINISHED:  # taken back by the queue meanwhile: not ours to end
            return
        if job.purge_requested:
            self.purge_files(job_id)
        if job.callback_url:
            self.webhooks.deliver_async(job)


def _check_no_nul(name: str, value: Any) -> None:
    """Text with NUL characters cannot be stored (PostgreSQL refuses it): a 422 naming the field."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidRequest(f"{name}: must not contain NUL (\\x00) characters", field=name)
