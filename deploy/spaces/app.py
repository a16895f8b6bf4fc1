"""t2v on Hugging Face Spaces: t2v's own web page (``t2v.ui.build_ui``) for one user, generation under ``@spaces.GPU``.

Copy this folder (README.md, app.py, requirements.txt) into a Gradio Space. Variables (Space settings):

- ``T2V_MODEL``: the model the page uses by default. Unset: ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` when the Space
  has a GPU (dedicated or ZeroGPU), the bundled CPU model ``t2v-shapes`` when it has none. ``T2V_MODEL=t2v-shapes``
  forces the small model anywhere (it needs no download).
- ``T2V_HOME``: where jobs, videos and model weights live. Unset on a Space with persistent storage: ``/data/t2v``.
- ``T2V_GPU_DURATION``: seconds one ZeroGPU call may hold the GPU (one job per call; default 300).
- ``T2V_WARM``: ``1``/``0`` to load the model at start-up or not (default: yes, except on ZeroGPU).
- Any other ``T2V_*`` setting (``T2V_MAX_FRAMES``, ``T2V_MAX_STEPS``, ``T2V_MAX_SIDE``...): see ``t2v.settings``.

Where generation runs, and why this way
---------------------------------------
In ``t2v serve``/``t2v ui`` the page submits a job to a :class:`t2v.service.JobService` and polls it, while worker
threads owned by the service claim and run jobs. ZeroGPU cannot work like that: the GPU exists only while a function
decorated with ``@spaces.GPU`` runs, and that function must be called from a Gradio event (ZeroGPU charges the
visitor's quota from the request, and runs the function in a forked process). So here:

1. the service has **no worker threads** (``build_services(..., no_workers=True)``);
2. its ``submit`` (called by the page's Generate handler, through ``t2v.ui.handlers.submit``) queues the job as
   always, then starts a thread that carries the handler's context (``contextvars.copy_context``: Gradio's request)
   and calls :func:`run_next_job`, decorated with ``@spaces.GPU``, once per queued job, one at a time;
3. :func:`run_next_job` claims the oldest queued job and runs it with t2v's own worker code (progress, live preview,
   cancel, checkpoints, files, record, all written to the job row and ``$T2V_HOME``), so the page's usual polling
   shows progress and the result exactly as under ``t2v serve``.

Everything it returns is a job id (picklable, as ZeroGPU needs); the job row is the truth. Outside ZeroGPU (a
dedicated GPU, a CPU Space, tests) ``@spaces.GPU`` is a no-op, or ``spaces`` is not installed, and the same code runs
in-process. ``submit`` returns at once (the job runs in that thread) and the handler goes on polling, so the queue
position, progress bar, preview and Cancel keep working (``Worker.run_one``: claim the next job, run it here).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

# `spaces` first: on ZeroGPU it patches torch, which must happen before torch is imported (t2v imports it lazily).
try:
    import spaces  # type: ignore[import-not-found]
except ImportError:  # not on Spaces (tests, a laptop): generation runs in-process without it
    spaces = None

logger = logging.getLogger("t2v.spaces")

HUB_DEFAULT = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"  # 1.3B parameters: fits one A10G (24 GB) or a ZeroGPU slice
CPU_MODEL = "t2v-shapes"  # ships inside t2v: no download, a few seconds per clip on a CPU
ON_ZEROGPU = spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
GPU_DURATION = int(os.environ.get("T2V_GPU_DURATION", "300"))
MAIN_PID = os.getpid()
#: A public demo's limits, used unless the Space sets the T2V_* variable (enough for Wan 2.1 at 480x832, 81 frames).
SPACE_LIMITS: dict[str, Any] = {"max_frames": 81, "max_steps": 50, "max_side": 832, "max_prompt_chars": 500}
ZEROGPU_MEMORY_GB = 40.0  # one ZeroGPU slice; the main process has no CUDA to ask

#: Ids of the jobs run by run_next_job in this process (the tests check generation went through it).
GPU_RUNS: list[str] = []


def gpu(fn):
    """``@spaces.GPU(duration=...)`` where ``spaces`` is installed (itself a no-op outside ZeroGPU), else ``fn``."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=GPU_DURATION)(fn)


def has_gpu(environ=os.environ) -> bool:
    """A GPU for generation: ZeroGPU (no CUDA in this process, a GPU inside @spaces.GPU), or CUDA here."""
    if environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
        return True
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken: the CPU model still needs torch, but say "no GPU" here
        return False


def pick_model(environ=os.environ, gpu_available: bool | None = None) -> str:
    """The Space's default model: ``T2V_MODEL`` when set, else the hub model on a GPU and ``t2v-shapes`` without."""
    chosen = (environ.get("T2V_MODEL") or "").strip()
    if chosen:
        return chosen
    if gpu_available is None:
        gpu_available = has_gpu(environ)
    return HUB_DEFAULT if gpu_available else CPU_MODEL


def _space_home() -> None:
    """On a Space with persistent storage, keep jobs, videos and weights in /data (unless T2V_HOME says otherwise)."""
    if os.environ.get("SPACE_ID") and not os.environ.get("T2V_HOME"):
        data = Path("/data")
        if data.is_dir() and os.access(data, os.W_OK):
            os.environ["T2V_HOME"] = str(data / "t2v")


def space_settings(model: str):
    """t2v's settings for the Space: the default model, a public demo's limits unless set, ZeroGPU's memory."""
    from t2v.settings import get_settings

    overrides: dict[str, Any] = {"default_model": model}
    for name, value in SPACE_LIMITS.items():
        if f"T2V_{name.upper()}" not in os.environ:
            overrides[name] = value
    if ON_ZEROGPU and "T2V_MEMORY_BUDGET_GB" not in os.environ:
        overrides["memory_budget_gb"] = ZEROGPU_MEMORY_GB
    return get_settings(**overrides)


def fetch_model(model: str, settings) -> None:
    """Download ``model`` into t2v's cache at start-up (visitors may not make the Space download: only cached
    models run). Bundled models, local folders and offline Spaces download nothing."""
    from t2v.models.download import is_offline
    from t2v.models.source import looks_like_path, pull

    if is_offline(settings) or looks_like_path(model) or model == CPU_MODEL:
        return
    try:
        pull(model, settings)
    except Exception:  # the page still starts; jobs then say the model is unavailable
        logger.exception("could not download %s", model)


# -- the service: no worker threads; jobs run under @spaces.GPU, started from the Gradio handler ------------------
from t2v.service import JobService, build_services  # noqa: E402  (after `spaces`)


class SpaceJobService(JobService):
    """A :class:`JobService` whose jobs run in :func:`run_next_job` (``@spaces.GPU``), started by ``submit``."""

    def __init__(self, settings, **ports) -> None:
        super().__init__(settings, **ports)  # built by build_services(..., service_class=SpaceJobService)
        self.gpu_lock = threading.Lock()

    def submit(self, fields, **kwargs):
        job, created = super().submit(fields, **kwargs)
        if created:
            self.kick()
        return job, created

    def kick(self) -> threading.Thread:
        """Run the queued jobs in a thread that carries the caller's context (the Gradio request ZeroGPU needs)."""
        thread = threading.Thread(target=contextvars.copy_context().run, args=(self.drain,),
                                  name="t2v-space-runner", daemon=True)
        thread.start()
        return thread

    def drain(self) -> None:
        """Run queued jobs, one @spaces.GPU call each, one at a time, until none is queued. Every submit starts a
        drain that waits for the lock, so a job queued while another drain ends is never left behind."""
        with self.gpu_lock:
            while not self.stopping.is_set() and self.list(status="queued", limit=1):
                try:
                    if run_next_job() is None:
                        return
                except Exception:  # e.g. ZeroGPU ended the call (duration, quota): the janitor requeues or fails it
                    logger.exception("running a job on the GPU failed")
                    if self.stopping.wait(self.settings.stale_after_s * 1.5):
                        return


@gpu
def run_next_job() -> str | None:
    """Claim the oldest queued job and run it here (on ZeroGPU: in the forked process that holds the GPU)."""
    from t2v.service.worker import Worker

    svc = service
    if os.getpid() != MAIN_PID:
        # Forked by ZeroGPU: never share the parent's pooled database connections (SQLAlchemy's advice for fork).
        svc.engine.dispose(close=False)
    # Never started as a thread: t2v's worker body runs here (generate(), progress and preview to the job row,
    # cancel between steps, checkpoints, files and record, failures retried or failed), as in `t2v serve`.
    job_id = Worker(svc, 0).run_one()
    if job_id is not None:
        GPU_RUNS.append(job_id)
    return job_id


def space_header(model: str) -> str:
    """The page's header: what runs here (this Space serves the page only, not the REST API under /v1)."""
    return (f"# t2v · text to video\nDescribe a clip, press **Generate**, watch it denoise. This Space runs t2v with "
            f"**{model}** by default; every clip comes with its JSON record (seed, steps, model hash, versions), "
            "so it can be made again.")


def _guard_uploads(demo) -> None:
    """What ``t2v.ui.mount_ui`` does to Gradio's upload routes (only checked images, or none), on the app
    ``demo.launch`` made (whose routes are looked up per request, so adding them now takes effect).
    ``protect_uploads`` looks for the page's app among the routes of the app it is mounted on: here, a
    stand-in whose one route mounts Gradio's own app."""
    from types import SimpleNamespace

    from starlette.routing import Mount

    from t2v.ui import protect_uploads

    gradio_app = getattr(demo, "server_app", None) or demo.app
    if getattr(gradio_app, "blocks", None) is not demo:
        gradio_app.blocks = demo
    protect_uploads(SimpleNamespace(router=SimpleNamespace(routes=[Mount("", app=gradio_app)])), demo)


def launch(demo, **kwargs):
    """Serve the page as a Space does (``python app.py``): Gradio's own server (ZeroGPU hooks into it), with the
    options ``t2v.ui.mount_ui`` gives the page under ``t2v serve``."""
    from t2v.ui import page_options

    options = {**page_options(service, demo), "prevent_thread_lock": True, **kwargs}
    demo.launch(**options)
    _guard_uploads(demo)
    return demo


def shutdown() -> None:
    """Stop the service (its janitor) and close the database: for tests and a clean exit."""
    service.stop(timeout=5)


def generate_video(prompt: str, *, seed: int | None = None, timeout: float = 900.0, **form: Any) -> Path:
    """What the page's Generate button does, as one call: ``t2v.ui.handlers.submit`` with the page's default form
    (``form`` overrides fields: num_frames, width, height, num_inference_steps, model, formats...), then watching
    the job as the page does until it ends. Returns the MP4 (or the player's WebM)."""
    from t2v.ui import events as E
    from t2v.ui import handlers as H

    values = {**H.default_form(service), **form, "prompt": prompt}
    if seed is not None:
        values.update(seed_mode="fixed", seed=str(seed))
    job_id, _ = H.submit(service, values)
    deadline = time.monotonic() + timeout
    view = None
    for view in E.poll(service, job_id, interval=0.2, keep_going=lambda: time.monotonic() < deadline):
        if view.finished:
            break
    if view is None or view.status != "succeeded":
        status = "still running" if view is None or not view.finished else view.status
        raise RuntimeError(f"job {job_id} {status}: {getattr(view, 'error', None) or 'no video'}")
    path = view.downloads.get("mp4") or view.video
    if path is None:
        raise RuntimeError(f"job {job_id} succeeded without a video file")
    return Path(path)


# -- module level: what a Space runs (and what `gradio app.py` reloads) ----------------------------------------
_space_home()
MODEL = pick_model()
settings = space_settings(MODEL)
fetch_model(MODEL, settings)
# The janitor requeues a job left running by a restart; no worker threads.
service = build_services(settings, no_workers=True, service_class=SpaceJobService).start()
if os.environ.get("T2V_WARM", "0" if ON_ZEROGPU else "1") == "1":
    # Load the weights now, in this process (not on ZeroGPU: CUDA must not start in its main process).
    service.warm(MODEL)

from t2v.ui import build_ui  # noqa: E402

demo = build_ui(service, header=space_header(MODEL))  # single user: no API key while the database holds none

if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("T2V_LOG_LEVEL", "INFO").upper())
    if not ON_ZEROGPU:
        service.kick()  # jobs a restart left queued (on ZeroGPU they wait for the next Generate: no request here)
    launch(demo)
    demo.block_thread()
