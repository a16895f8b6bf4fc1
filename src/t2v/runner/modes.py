"""The runner's one entry, :func:`generate`: a request of any mode run by the mode it names.

Each mode (:class:`t2v.runner.mode.Mode`: what it takes and how it is checked) is run by a :class:`ModeRun` (its
run function and the keyword arguments that takes), listed once in :data:`RUNS`; the runner looks the request's
mode up there and never branches on its name. The runs sit beside this module: video in :mod:`t2v.runner.video`,
image and keyframe sequences in :mod:`t2v.runner.image`, post in :mod:`t2v.runner.post`. Adding a mode is its own
module, its :class:`~t2v.runner.mode.Mode` and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from t2v.requests import GenerationResult
from t2v.runner.image import generate_images, generate_sequence
from t2v.runner.mode import IMAGE, POST, SEQUENCE, VIDEO, Mode, mode_of
from t2v.runner.post import run_post_request
from t2v.runner.video import generate_video
from t2v.settings import Settings

# What every mode takes; a mode adds its own (a checkpoint to resume, previews, input resolvers).
COMMON = frozenset({"on_progress", "should_cancel", "output", "settings"})


@dataclass(frozen=True)
class ModeRun:
    """How the runner makes a request of ``mode``: ``run(request, **kwargs)`` with the keyword arguments in
    ``takes`` (others given to :func:`generate` are for other modes and are not passed)."""

    mode: Mode
    run: Callable[..., GenerationResult]
    takes: frozenset[str]


def last_image(request, **kwargs) -> GenerationResult:
    """Image mode through the common entry: every image is written, the last one's result returned
    (:func:`t2v.runner.image.generate_images` returns them all)."""
    return generate_images(request, **kwargs)[-1]


RUNS: dict[str, ModeRun] = {run.mode.name: run for run in (
    ModeRun(VIDEO, generate_video, COMMON | {"checkpoint", "on_preview", "resolve_image", "resolve_video", "admitted",
                                             "stream"}),
    ModeRun(SEQUENCE, generate_sequence, COMMON | {"checkpoint", "on_preview"}),
    ModeRun(IMAGE, last_image, COMMON),
    ModeRun(POST, run_post_request, COMMON | {"resolve_job", "resolve_video"}),
)}


def generate(request, *, settings: Settings, output: str | Path | None = None, **kwargs: Any) -> GenerationResult:
    """Run ``request`` (video, sequence, image or post) and write its files (``request.formats``) and JSON record.

    ``on_progress`` receives :class:`~t2v.requests.ProgressEvent` s; ``should_cancel`` is polled between steps
    and raises :class:`~t2v.errors.Cancelled` when it returns True. ``on_preview(step, image)`` (video, sequence)
    gets a cheap RGB preview after each step. ``checkpoint`` resumes a killed run. ``resolve_image`` /
    ``resolve_video`` / ``resolve_job`` map the ids a server's requests carry to files. ``admitted`` (a mode that
    plans memory): the plan a job was admitted with (:meth:`t2v.runner.plan.RunPlan.admitted`), kept on the same
    machine. ``stream`` (video): the clip written as it is made (:func:`t2v.runner.video.generate_video`). Files go
    to ``output``
    (:func:`t2v.export.outputs.output_stem`); with ``formats=()`` nothing is written and the frames are returned.
    """
    mode = RUNS[mode_of(request).name]
    given = {"settings": settings, "output": output, **kwargs}
    return mode.run(request, **{k: v for k, v in given.items() if k in mode.takes and v is not None})
