"""A job as a front end shows it: where it stands in one line, its progress, and a finished clip's summary.

Built from a :class:`t2v.contract.Job` (the REST answer, or the in-process service's job converted to it).
Text is plain; a front end that renders markdown escapes it itself (see :meth:`JobView.summary_parts`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from t2v.progress import stage_times

FINISHED = ("succeeded", "failed", "cancelled")
STAGES = {"load": "Loading the model", "encode_prompt": "Encoding the prompt", "denoise": "Denoising",
          "decode": "Decoding frames", "post": "Post-processing", "export": "Writing the video files",
          "done": "Finishing"}


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"


def post_summary(post: dict[str, Any] | None) -> str:
    """A job record's ``postprocess`` in one line: each step, then what came out ("" without one), e.g.
    "deflicker · interpolate 2x (flow) · upscale 2x (lanczos) → 15 frames 128×128 @ 16 fps"."""
    if not post:
        return ""
    steps = []
    for step in post.get("steps") or ():
        name = str(step.get("name", "?"))
        if name == "interpolate":
            name += f" {step.get('factor')}x" + (f" ({step['method']})" if step.get("method") else "")
        elif name == "upscale":
            upscaler = str(step.get("upscaler") or "").replace("\\", "/").rsplit("/", 1)[-1]  # a weight file: its name
            name += f" {step.get('factor')}x" + (f" ({upscaler})" if upscaler else "")
        steps.append(name)
    out = (f"{post.get('num_frames')} frames {post.get('width')}×{post.get('height')} "
           f"@ {float(post.get('fps') or 0):g} fps")
    return f"{' · '.join(steps)} → {out}" if steps else out


@dataclass
class JobView:
    """Everything a front end shows about one job. ``preview``, ``poster``, ``video`` and ``downloads`` are
    whatever the front end shows them from (files in process, URLs or bytes over the API)."""

    job_id: str
    status: str
    request: dict[str, Any]
    stage: str | None = None
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    queue_position: int | None = None
    preview: Any = None
    poster: Any = None
    video: Any = None
    downloads: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    post: dict[str, Any] | None = None  # the result's ``postprocess`` (steps, and the frames, size and fps made)
    long: dict[str, Any] | None = None  # a longer video's ``long`` block (its segments and the frames made)
    audio: dict[str, Any] | None = None  # the clip's sound: the record's ``audio`` (rate, channels, length)
    live: Any = None  # while it runs: the clip so far, a growing mp4 (from its first finished part)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def fraction(self) -> float:
        if self.status == "succeeded":
            return 1.0
        return min(1.0, self.step / self.total) if self.total else 0.0

    @property
    def message(self) -> str:
        """One plain line on where the job stands."""
        if self.status == "queued":
            where = f"position {self.queue_position} in the queue" if self.queue_position else "starting"
            return f"Queued: {where}."
        if self.status == "running":
            text = STAGES.get(self.stage or "", "Starting")
            if self.stage == "denoise" and self.total:
                text += f": step {self.step} of {self.total}"
            elif self.stage == "post" and self.total:
                text += f": frame {self.step} of {self.total}"
            if self.stage in ("denoise", "decode") and self.eta_s is not None:
                text += f", about {format_seconds(self.eta_s)} left"
            return text + "…"
        if self.status == "succeeded":
            total = self.timings.get("total_s")
            took = f" in {format_seconds(total)}" if total is not None else ""
            return f"Done{took}. Seed {self.seed}." if self.seed is not None else f"Done{took}."
        if self.status == "cancelled":
            return "Cancelled."
        if self.status == "paused":
            at = f" at step {self.step} of {self.total}" if self.total and self.step else ""
            return f"Paused{at}: it waits until resumed."
        return f"Job failed: {self.error or 'unknown error'}"

    def summary_parts(self) -> list[tuple[str, str]]:
        """A finished clip's summary as (label, plain text) lines: seed and shape, post-processing (its steps and
        the clip it made), timings, prompt."""
        if self.status != "succeeded":
            return []
        r = self.request
        if r.get("mode") == "post":  # a clip post-processed as it was: its steps, no seed or sampling
            return [("Post-processing", post_summary(self.post) if self.post else "none"), *self.timing_parts(),
                    ("Prompt", str(r.get("prompt") or "(an uploaded video)"))]
        method = f"{r['method']} · " if r.get("method") else ""  # image sequences
        frames = f"{r.get('num_frames')} frames"
        if self.long and self.long.get("method"):  # made in one run by the model (diffusion forcing)
            frames = f"{self.long.get('frames')} frames by {self.long['method']}"
        elif self.long:  # a longer video: the frames made, not one segment's
            frames = f"{self.long.get('frames')} frames in {len(self.long.get('segments') or ())} segments"
        parts = [("Seed", f"{self.seed} · {method}{frames} {r.get('width')}×{r.get('height')} "
                          f"@ {r.get('fps') or 0:g} fps · {r.get('num_inference_steps')} steps {r.get('scheduler')} · "
                          f"guidance {r.get('guidance_scale') or 0:g}")]
        if self.post:
            parts.append(("Post-processing", post_summary(self.post)))
        if self.audio:
            a = self.audio
            channels = {1: "mono", 2: "stereo"}.get(a.get("channels"), f"{a.get('channels')} channels")
            parts.append(("Sound", f"{(a.get('sample_rate') or 0) / 1000:g} kHz {channels} · {a.get('length_s', 0):.2f} s "
                                   f"({a.get('source', 'generated')}; in the MP4 and WebM, beside a GIF as WAV)"))
        parts += self.timing_parts()
        parts.append(("Prompt", str(r.get("prompt", ""))))
        return parts

    def timing_parts(self) -> list[tuple[str, str]]:
        """Every stage of the record's timings, in the run's order, then the total they add up to and the work
        that ran beside them (:func:`t2v.progress.stage_times`)."""
        stages, beside = stage_times(self.timings)
        times = [f"{name.replace('_', ' ')} {format_seconds(s)}" for name, s in stages]
        if self.timings.get("total_s") is not None:
            times.append(f"total {format_seconds(self.timings['total_s'])}")
        times += [f"({name.replace('_', ' ')} {format_seconds(s)} beside)" for name, s in beside]
        return [("Timings", " · ".join(times))] if times else []


class SteadyEta:
    """The ETA a person watches: between updates it counts down, and a new estimate a little above that count
    (within a quarter and 2 s: the noise of a slow step or a late write) does not send it back up; a bigger
    rise, or any fall, is shown as it is. One per job watched."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.shown: float | None = None
        self.at = 0.0

    def __call__(self, eta: float | None) -> float | None:
        now = self.clock()
        if eta is None:
            self.shown = None
            return None
        if self.shown is not None:
            counted = max(self.shown - (now - self.at), 0.0)
            if counted < eta <= counted * 1.25 + 2.0:
                eta = counted
        self.shown, self.at = eta, now
        return eta


def progress_label(v: JobView) -> str:
    """The words beside a progress bar: queue position, step/total and ETA, or the stage."""
    if v.status == "queued":
        return f"queued, position {v.queue_position}" if v.queue_position else "queued"
    if v.status not in ("running", "succeeded"):
        return v.status
    if v.status == "running" and v.stage == "post" and v.total:
        return f"post-processing {v.step} / {v.total}"
    label = f"step {v.step} / {v.total}" if v.total else STAGES.get(v.stage or "", "starting").lower()
    if v.status == "running" and v.eta_s is not None and v.stage in ("denoise", "decode"):
        label += f" · ETA {format_seconds(v.eta_s)}"
    if v.status == "running" and v.stage in ("decode", "export"):
        label += f" · {STAGES[v.stage].lower()}"
    return label


def view_of(job) -> JobView:
    """The view of a :class:`t2v.contract.Job`; ``downloads`` holds each result file's URL by format."""
    p = job.progress
    request = job.request or {}
    metadata = (job.result.metadata if job.result else None) or {}
    v = JobView(job_id=job.id, status=job.status, request=request, stage=p.stage, step=p.step or 0,
                total=p.total or 0, eta_s=p.eta_s, queue_position=job.queue_position, error=job.error,
                seed=metadata.get("seed", request.get("seed")))
    if job.status == "succeeded":
        v.timings = {k: float(x) for k, x in (metadata.get("timings") or {}).items() if isinstance(x, (int, float))}
        v.downloads = {f.format: f.url for f in job.result.files if f.url}
        v.post = metadata.get("postprocess") or None
        v.long = metadata.get("long") or None
        v.audio = metadata.get("audio") or None
    return v


def clip_filename(request: dict[str, Any] | None, suffix: str, tag: str = "") -> str:
    """A downloaded file's name: the job's prompt and seed (``a-red-circle-moving-right-seed3.mp4``), then
    ``tag`` where two jobs must never share a name."""
    from t2v.export.outputs import slugify  # deferred: imports numpy

    request = request or {}
    seed = request.get("seed")
    parts = [slugify(request.get("prompt") or ""), *([f"seed{seed}"] if seed is not None else []), *([tag] if tag else [])]
    return "-".join(parts) + suffix
