"""What every mode of the runner shares: :func:`start` (resolve the request, check the outputs can be written, find
and check the model against its family's rules, read the input image or video, choose a memory plan, load) and
:func:`finish` (note the plan, post-process, export). The modes supply only what differs: video here in
:mod:`t2v.runner.video`, image and keyframe modes in :mod:`t2v.runner.image`, post in :mod:`t2v.runner.post`; they are
registered in :mod:`t2v.runner.modes`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from t2v.export import frames_sha256
from t2v.export.audio import fit, make_audio
from t2v.export.outputs import export_result, output_stem
from t2v.control import load_control
from t2v.inputs import load_image, load_video
from t2v.models.device import set_threads, tune_allocator
from t2v.models.loader import load_model
from t2v.planner import steptime
from t2v.planner.memory import run_key
from t2v.post.stage import post_record, run_post
from t2v.progress import ProgressEmitter
from t2v.record import build_record
from t2v.requests import GenerationResult, ProgressEvent
from t2v.runner.plan import RunPlan, plan_run
from t2v.models.publicnames import public_model
from t2v.settings import Settings

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class Run:
    """A started run: the resolved request, where files go, the model and its family, progress and cancel, and
    the :class:`~t2v.runner.plan.RunPlan` it was started with (``planned``)."""

    request: Any
    stem: Path
    source: Any  # t2v.models.source.ModelSource
    family: Any  # t2v.families.Family
    loaded: Any  # t2v.models.loader.LoadedModel
    plan: Any  # t2v.models.device.DevicePlan
    emit: ProgressEmitter
    cancel: Callable[[], bool]
    t_start: float
    memory: Any = None  # t2v.planner.memory.MemoryPlan
    predictions: list = field(default_factory=list)
    image: Any = None  # t2v.inputs.InputImage for image-to-video
    video: Any = None  # t2v.inputs.InputVideo for video-to-video
    total: int = 0
    done: int = 0
    model_name: str | None = None  # how the record names the model (None: its source's id)
    last_image: Any = None  # t2v.inputs.InputImage for the last frame (first-last-frame)
    control: Any = None  # t2v.control.ControlInputs (VACE)
    planned: RunPlan | None = None

    def chosen(self):
        """The chosen memory plan's prediction (:class:`t2v.planner.memory.Prediction`)."""
        return next(p for p in self.predictions if p.plan == self.memory.name)

    @cached_property
    def timed_work(self):
        """The chosen plan's work (a :class:`t2v.planner.steptime.Work`) and the step-times key of this run (made
        once: the ETA's prediction and the run's observation share it)."""
        chosen, request = self.chosen(), self.request
        work = steptime.Work(chosen.flops_per_step, chosen.step_ops, chosen.decode_flops, chosen.decode_ops)
        return work, run_key(self.source.path, request, plan=chosen.plan, device=request.device, dtype=request.dtype)

    def step(self) -> None:
        """One model step done (image modes count their own): report denoising progress."""
        self.done += 1
        self.emit("denoise", self.done, self.total)

    def record(self, request, frames, *, warnings: list[str], timings: dict, resumed_from_step: int | None = None) -> dict:
        """The reproducibility record of ``frames`` made for ``request`` by this run."""
        rec = build_record(request, source=self.source, loaded=self.loaded, warnings=[*self.plan.warnings, *warnings],
                           timings=timings, frames_sha256=frames_sha256(frames), resumed_from_step=resumed_from_step)
        if self.model_name is not None:  # a server's own folder, by its name (T2V_RECORD_PATHS=0)
            rec["model"] = self.model_name
        if self.image is not None:
            rec["image_sha256"] = self.image.sha256
        if self.last_image is not None:
            rec["last_image_sha256"] = self.last_image.sha256
        if self.video is not None:
            rec["video_sha256"] = self.video.sha256
        if self.control is not None:
            rec.update(self.control.hashes)
        if self.planned is not None:  # what was chosen, the model named as the record names it
            rec["plan"] = {**self.planned.to_dict(), "source": rec["model"]}
        return rec


def start(request, *, settings: Settings, output: str | Path | None = None,
          on_progress: ProgressCallback | None = None, should_cancel: Callable[[], bool] | None = None,
          check: Callable[[Path, Any], None] | None = None, plan_memory: bool = False,
          resolve_image: Callable[[str], Path] | None = None, resolve_video: Callable[[str], Path] | None = None,
          admitted: dict | None = None) -> Run:
    """Plan (:func:`t2v.runner.plan.plan_run`), check and load: everything before sampling. ``check(stem, request)``
    refuses outputs that could not be written; ``plan_memory`` picks a memory plan (video); ``resolve_image`` and
    ``resolve_video`` map the request's ``image`` and ``video`` (asset ids on a server) to files; ``admitted`` is
    the plan a job was admitted with (kept on the same machine)."""
    t_start = time.perf_counter()
    emit = ProgressEmitter(on_progress, t_start)  # the run's stopwatch: its stages add up to total_s
    emit.activate()
    cancel = should_cancel or (lambda: False)
    stem, implied = output_stem(output, request.prompt)
    if implied and implied not in request.formats:
        request = request.model_copy(update={"formats": (implied, *request.formats)})
    inputs: dict[str, Any] = {}

    def before_source(request) -> None:  # refusals and input files read before the model is looked for
        if check is not None:
            check(stem, request)
        if getattr(request, "image", None):
            inputs["image"] = load_image(resolve_image(request.image) if resolve_image else request.image)
        if getattr(request, "last_image", None):
            inputs["last_image"] = load_image(resolve_image(request.last_image) if resolve_image
                                              else request.last_image, field="last_image")
        if getattr(request, "video", None):  # a file path, or on a server an asset id (t2v.service.limits.admit)
            clip = resolve_video(request.video) if resolve_video else request.video
            inputs["video"] = load_video(clip, width=request.width, height=request.height,
                                         num_frames=request.num_frames)
        inputs["control"] = load_control(request, resolve_image=resolve_image, resolve_video=resolve_video)
        emit("load", message=f"loading {named(request.model)}", timed=False)  # (the stopwatch: planning until it loads)
        emit.mark("imports")  # torch and diffusers: the first run of a process imports them, later ones find them
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        emit.mark("plan")
        if settings.threads:  # asked for (T2V_THREADS); else the caller's or torch's default (the physical cores)
            set_threads(settings.threads)

    named = (lambda m: m) if settings.record_paths else (lambda m: public_model(settings, m))
    planned = plan_run(request, settings, memory=plan_memory, check=before_source, should_cancel=cancel,
                       admitted=admitted, times=emit.wanted)
    request, source, family, plan, memory = (planned.request, planned.source, planned.family, planned.device,
                                             planned.memory)
    emit.mark("load")
    tune_allocator(settings.mmap_threshold_kb)  # before this process's first large tensors (once)
    loaded = load_model(source, plan, family=family, offload=bool(memory and memory.offload),
                        loras=getattr(request, "loras", ()), weights=getattr(request, "weights", "auto"),
                        text_weights=getattr(request, "text_encoder_weights", "auto"))
    if not loaded.load_s:  # found in the model cache: nothing was loaded, the lookup was planning
        emit.relabel("plan")
    # Record what actually ran (after fallbacks), not what was asked.
    request = request.model_copy(update={"device": plan.device, "dtype": plan.dtype})
    run = Run(request, stem, source, family, loaded, plan, emit, cancel, t_start, memory, list(planned.predictions),
              inputs.get("image"), inputs.get("video"), model_name=None if settings.record_paths else named(source.id),
              last_image=inputs.get("last_image"), control=inputs.get("control"), planned=planned)
    expect_times(run)
    return run


def expect_times(run: Run) -> None:
    """Give the run's progress the chosen plan's predicted step and decode times (learned from this machine's
    earlier runs where there are some), for an ETA from the first step on; only when somebody listens."""
    if not run.emit.wanted or run.memory is None:
        return
    try:
        times = steptime.predict(*run.timed_work, run.request.device, run.request.dtype)
    except Exception as e:  # noqa: BLE001  an ETA is never worth failing a run for
        logger.debug("no predicted times for the ETA: %s", e)
        return
    run.emit.expect(times.step_s, times.decode_s, learned=times.runs > 0 and not times.other_plans)


def observe_times(run: Run, timings: dict[str, float], *, steps: int) -> None:
    """Keep what this run measured per step and for the decode, for later predictions of its key
    (:mod:`t2v.planner.steptime`; a compiled run under a key of its own, with its compile time: its stages do not
    count the compile, t2v.progress carves it out)."""
    if run.memory is None or "decode_s" not in timings:
        return
    try:
        work, key = run.timed_work
        steptime.observe(key, work, steps=steps, denoise_s=timings.get("denoise_s", 0.0), decode_s=timings["decode_s"],
                         compile_s=timings.get("compile_s"))
    except Exception as e:  # noqa: BLE001  a cache is never needed: no failure here may cost the run
        logger.debug("step times not kept: %s", e)


def finish(run: Run, frames, record: dict, warnings: list[str], audio: tuple | None = None) -> GenerationResult:
    """Note the memory plan, post-process, export: the end every video run shares. ``audio`` (samples, rate): the
    sound the model made, kept unless the request says ``no_audio``, fitted to the final frames' length."""
    request = run.request
    chosen = run.chosen()
    record["memory_plan"] = {"requested": request.memory, "plan": run.memory.name,
                             "predicted_peak_mb": round(chosen.peak_bytes / 2**20, 1), "method": chosen.method}
    for w in warnings:
        logger.warning(w)
    sound = None if audio is None or getattr(request, "no_audio", False) else make_audio(*audio, name="audio")
    frames, fps = post_process(frames, request, record, emit=run.emit, cancel=run.cancel)
    if sound is not None:
        sound = fit(sound, len(frames) / fps)
        record["audio"] = {**sound.to_record(), "source": "generated"}
    result = GenerationResult(request=request, frames=frames, record=record, audio=sound)
    export_result(result, run.stem, emit=run.emit, cancel=run.cancel, fps=fps)
    run.emit("done", message="done")
    return result


def post_process(frames, request, record: dict, *, emit=None, cancel=None):
    """The request's post-processing (:mod:`t2v.post`), if any: the new frames and fps, noted in ``record``
    (``postprocess``: each step with its parameters and time; the stage's time is ``timings.post_s``)."""
    spec = getattr(request, "post", None)
    if spec is None or not spec.active:
        return frames, request.fps
    if emit is not None:
        emit("post")
    frames, fps, steps = run_post(frames, request.fps, spec, emit=emit, cancel=cancel)
    record["postprocess"] = post_record(steps, frames, fps)
    return frames, fps


