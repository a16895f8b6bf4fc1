"""A worker: claims queued jobs from the database and runs them through ``generate()`` with the plan each was
admitted with (on another machine the run is planned again, and its record says so).

Progress goes to the job row at most a few times per second; a heartbeat thread keeps the row
alive while the model loads; latent checkpoints let a job killed mid-run resume on the next start.
A try that fails for a reason that is not the request's (an import error, memory, I/O) puts the job
back in the queue, its checkpoint kept, for at most ``T2V_MAX_ATTEMPTS`` tries in all.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, TYPE_CHECKING

from t2v.sampling import promptcache
from t2v.sampling.base import CheckpointSpec
from t2v.errors import Cancelled, T2VError, out_of_resources
from t2v.export import atomic_path, remove_output
from t2v.export.stream import StreamSpec
from t2v.runner.modes import generate as run_request
from t2v.service.liveness import worker_id as new_worker_id
from t2v.requests import request_from_fields

if TYPE_CHECKING:
    from t2v.service.service import JobService

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
CANCEL_POLL_S = 0.5
PREVIEW_INTERVAL_S = 1.0
PREVIEW, POSTER = "preview.png", "poster.png"


def _save_png(image, path: Path) -> None:
    """Write a small PNG atomically (readers may poll it while it is rewritten)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
    except OSError:
        logger.warning("could not write %s", path, exc_info=True)


def is_transient(exc: BaseException) -> bool:
    """A failure that is not the request's fault, so another try may succeed: the machine's
    (:func:`t2v.errors.out_of_resources`: imports, memory, memory held by other jobs now) or an OSError
    (reading weights, writing files), also as the explicit cause of a t2v error (``could not load unet ...``).
    A weight file whose content is damaged (:func:`damaged_content`) is not: every try would read the same bytes."""
    if damaged_content(exc):
        return False
    for e in (exc, exc.__cause__):
        if out_of_resources(e) or isinstance(e, OSError):
            return True
    return False


#: Errors a reader raises for bytes that are not what they should be (a truncated or overwritten weight file, a
#: config that is not JSON), as opposed to the OS failing to read them.
DAMAGED = ("SafetensorError", "HeaderTooLarge", "UnpicklingError", "JSONDecodeError", "BadZipFile")


def damaged_content(exc: BaseException) -> bool:
    """Whether ``exc`` was caused (anywhere in its chain) by damaged file content rather than by the OS."""
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ in DAMAGED:
            return True
        e = e.__cause__ or e.__context__
    return False


class Worker(threading.Thread):
    def __init__(self, service: JobService, index: int, *, where: dict | None = None) -> None:
        super().__init__(name=f"t2v-worker-{index}", daemon=True)
        self.service = service
        self.worker_id = new_worker_id(index)  # names this process: see t2v.service.liveness
        #: Where this worker runs, written in each job's record as ``ran_on`` (executor, host, pid; a Ray
        #: actor adds its node and actor ids).
        self.where = {"executor": "threads", "host": socket.gethostname(), "pid": os.getpid(), **(where or {}),
                      "worker": self.worker_id}
        self.current: str | None = None
        self.alive_at = time.time()

    def run(self) -> None:
        svc = self.service
        while not svc.stopping.is_set():
            self.alive_at = time.time()
            if not svc.warm_state.get("done", True):
                # The warm-up is loading the model: claim nothing until it ends, so a process killed while
                # warming costs no job a try, and the first job reuses that load instead of waiting inside it.
                svc.stopping.wait(0.2)
                continue
            try:
                job = svc.repo.claims.claim_next(self.worker_id, fair_window_s=svc.settings.fair_window_s,
                                                     priority_across_keys=svc.settings.priority_across_keys)
            except Exception:  # database hiccup: wait and retry, never die
                logger.exception("claiming a job failed")
                job = None
            if job is None:
                svc.wakeup.wait(svc.settings.poll_s)  # a submit in this process wakes it at once
                svc.wakeup.clear()
                continue
            self.current = job.id
            try:
                self.run_job(job)
            finally:
                self.current = None

    def run_one(self) -> str | None:
        """Claim the oldest queued job and run it in the calling thread; its id, or None when none was queued.

        For a worker that is not started as a thread: a Hugging Face Space runs each job inside its
        ``@spaces.GPU`` function this way (deploy/spaces/app.py)."""
        job = self.service.repo.claims.claim_next(
            self.worker_id, fair_window_s=self.service.settings.fair_window_s,
            priority_across_keys=self.service.settings.priority_across_keys)
        if job is None:
            return None
        self.current = job.id
        try:
            self.run_job(job)
        finally:
            self.current = None
        return job.id

    def run_job(self, job) -> None:
        """Run a job this worker has claimed: generate, with progress, preview, cancel and checkpoints written
        to the job row, then its files and record; a failure is retried or fails the job, saying why."""
        svc, repo, store = self.service, self.service.repo, self.service.files
        ckpt_path = store.checkpoint_path(job.id)  # with object storage: the last machine's checkpoint, fetched
        out_dir = store.workdir(job.id)
        for torn in out_dir.glob(".*.part"):  # half-written files of a try killed mid-export
            remove_output(torn)
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, stop_beat), daemon=True)
        beat.start()
        t0 = time.perf_counter()
        try:
            request = request_from_fields(job.request)
            with promptcache.scope(job.api_key_id):  # one key's prompt embeddings serve only that key's jobs
                result = run_request(
                    request,
                    on_progress=self._progress_writer(job.id),
                    should_cancel=self._cancel_checker(job.id),
                    output=out_dir / "video",
                    checkpoint=CheckpointSpec(path=ckpt_path, every=svc.settings.checkpoint_every,
                                              on_save=store.checkpoint_saved(job.id)),
                    settings=svc.settings,
                    on_preview=self._preview_writer(job.id, out_dir),
                    # The request's input files and a post job's asset: assets of the job's key; a post job's job: a
                    # succeeded job of the same key
                    resolve_image=svc.assets.image_resolver(job.api_key_id, request),
                    resolve_video=svc.assets.video_resolver(job.api_key_id, request),
                    resolve_job=svc.postjobs.job_video_resolver(job.api_key_id),
                    admitted=job.plan,  # kept on the machine that admitted it, planned again (and said so) elsewhere
                    # served by the content routes while the job runs
                    stream=StreamSpec(store.live_path(job.id), on_part=store.live_saved(job.id)),
                )
        except Cancelled:
            if not repo.is_cancel_requested(job.id) and (svc.stopping.is_set() or repo.controls.is_pause_requested(job.id)):
                # shutting down, or paused: back in the queue (paused ones stay there until resumed), resumed
                # from its last checkpoint
                repo.claims.requeue_worker(self.worker_id)
                logger.info("job %s handed back to the queue (%s)", job.id,
                            "shutdown" if svc.stopping.is_set() else "paused")
                return
            repo.mark_cancelled(job.id, self.worker_id)
            store.drop_checkpoint(job.id)
            store.drop_live(job.id)  # with object storage, the clip uploaded so far
            store.done_writing(job.id)
            svc.after_finish(job.id)  # a purge asked meanwhile by any process (the job row says) is done there
            return
        except Exception as e:  # the request's fault, a bug, or a passing failure (see _fail); the worker lives on
            if not isinstance(e, T2VError):
                logger.exception("job %s failed", job.id)
            if self._fail(job.id, e) == "queued":
                # Let passing trouble pass before this worker claims again (memory held by another job, a
                # file being copied): T2V_RETRY_PAUSE_S (2 s) after a first failed try, twice that after a
                # second, ... at most a minute.
                svc.stopping.wait(min(60.0, svc.settings.retry_pause_s * 2.0 ** (job.attempts - 1)))
            return
        finally:
            stop_beat.set()
        _save_png(result.frames[len(result.frames) // 2], out_dir / POSTER)
        try:  # into the artifact store (nothing to copy with the local one) before the job is marked done
            files = self._publish(job.id, result, out_dir)
        except Exception as e:  # object storage unreachable: the files are still here; try again later
            logger.warning("job %s: storing its files failed: %s", job.id, e)
            self._fail(job.id, OSError(f"could not store the job's files: {e}"))
            return
        record = {**result.record, "ran_on": self.where}  # provenance of this run, beside what makes it again
        # Counted before the job reads succeeded, so that /metrics already has its run when a client sees it done
        # (the run took its time even if the job was taken from this worker meanwhile).
        svc.metrics.observe_job(time.perf_counter() - t0, record)
        finished = repo.finish_job(job.id, self.worker_id, result=record, files=files)
        store.drop_live(job.id)  # the finished file is served now (a reader holding the file reads on)
        if finished:
            store.drop_checkpoint(job.id)  # kept until now: every failed try before resumed from it
            store.done_writing(job.id)
            svc.after_finish(job.id)

    def _publish(self, job_id: str, result, out_dir: Path) -> list[dict]:
        """Store a finished job's files (outputs, figures, record, poster); their ``files`` entries."""
        store = self.service.files
        files = [{**o.to_dict(), "path": store.publish(job_id, o.path)} for o in result.outputs]
        for name, fig in result.record.get("figures", {}).items():  # sequences: contact sheet, denoise grid
            files.append({"format": name, "file": fig["file"], "path": store.publish(job_id, out_dir / fig["file"])})
        if result.sidecar:
            files.append({"format": "json", "file": result.sidecar.name, "path": store.publish(job_id, result.sidecar)})
        store.publish(job_id, out_dir / POSTER)
        return files

    def _fail(self, job_id: str, exc: Exception) -> str | None:
        """End a try that raised ``exc``. A failure that is not the request's (:func:`is_transient`) puts the
        job back in the queue, its checkpoint kept, until it has had ``max_attempts`` tries; any other fails it.
        Returns the job's new status (None: another worker holds it now)."""
        svc = self.service
        error = str(exc) if isinstance(exc, T2VError) else f"{type(exc).__name__}: {exc}"
        if is_transient(exc):
            status = svc.repo.claims.retry_job(job_id, self.worker_id, error, max_attempts=svc.settings.max_attempts)
        else:
            status = "failed" if svc.repo.claims.fail_job(job_id, self.worker_id, error) else None
        if status == "queued":
            logger.warning("job %s: %s; queued again", job_id, error)
            svc.wakeup.set()
        elif status is not None:  # None: another worker holds the job now (and may resume from the checkpoint)
            svc.files.drop_checkpoint(job_id)
            svc.files.drop_live(job_id)
            svc.files.done_writing(job_id)
            svc.after_finish(job_id)
        return status

    def _preview_writer(self, job_id: str, out_dir: Path):
        last = {"t": 0.0}

        def on_preview(step: int, image) -> None:
            now = time.monotonic()
            if now - last["t"] >= PREVIEW_INTERVAL_S:
                last["t"] = now
                _save_png(image, out_dir / PREVIEW)
                self.service.files.publish_preview(job_id, out_dir / PREVIEW)

        return on_preview

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.service.settings.heartbeat_s):
            try:
                self.service.repo.heartbeat(job_id, self.worker_id)
            except Exception:
                logger.warning("heartbeat for %s failed", job_id, exc_info=True)

    def _progress_writer(self, job_id: str):
        last = {"t": 0.0, "stage": None, "step": 0, "total": 0}
        repo = self.service.repo

        def on_progress(event) -> None:
            now = time.monotonic()
            if event.stage == "denoise" and event.total:
                last.update(step=event.step, total=event.total)  # later stages keep showing the step count
            final_step = event.stage == "denoise" and event.total and event.step == event.total
            if event.stage == last["stage"] and not final_step and now - last["t"] < PROGRESS_INTERVAL_S:
                return
            last.update(t=now, stage=event.stage)
            repo.update_progress(job_id, self.worker_id, stage=event.stage, step=last["step"], total=last["total"],
                                 eta_s=event.eta_s)

        return on_progress

    def _cancel_checker(self, job_id: str) -> Callable[[], bool]:
        svc = self.service
        last = {"t": 0.0, "value": False}

        def should_cancel() -> bool:
            if svc.stopping.is_set() or job_id in svc.cancel_requested:
                return True
            now = time.monotonic()
            if now - last["t"] >= CANCEL_POLL_S:  # another process (t2v jobs cancel) may have asked
                last.update(t=now, value=svc.repo.controls.stop_asked(job_id))  # a cancel, or a pause
            return last["value"]

        return should_cancel
