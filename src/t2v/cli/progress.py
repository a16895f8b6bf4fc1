"""Rich progress for generation: a spinner while loading, a bar per denoising step with ETA, then stages."""

from __future__ import annotations

import time
from datetime import timedelta

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from t2v.cli.common import Interrupt, err
from t2v.cli.startup import LoadingPause
from t2v.requests import ProgressEvent

_LABELS = {
    "load": "Loading model",
    "encode_prompt": "Encoding prompt",
    "denoise": "Denoising",
    "decode": "Decoding frames",
    "post": "Post-processing",
    "export": "Encoding files",
}


class TimeLeftColumn(ProgressColumn):
    """The run's time left where the task has it (its ``until`` field: the monotonic time the run's ETA ends,
    denoising and decoding together; also on a bar already full, as a job's while it decodes), else Rich's
    estimate for the task's own bar."""

    def __init__(self) -> None:
        super().__init__()
        self.fallback = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        until = task.fields.get("until")
        if until is None:  # (a bar whose stage has ended has none: GenerationProgress clears it)
            return self.fallback.render(task)
        return Text(str(timedelta(seconds=round(max(until - time.monotonic(), 0.0)))), style="progress.remaining")


def until(eta_s: float | None) -> float | None:
    """A task's ``until`` field for an ETA of ``eta_s`` seconds from now."""
    return None if eta_s is None else time.monotonic() + eta_s


class GenerationProgress:
    """Context manager whose instance is an ``on_progress`` callback."""

    def __init__(self, interrupt: Interrupt, *, quiet: bool = False) -> None:
        self.interrupt = interrupt
        self.quiet = quiet
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeLeftColumn(),
            console=err,
            transient=False,
            disable=quiet,
        )
        self.task = None
        self.stage = ""
        self.tasks: dict[str, object] = {}  # a stage met again (a long video's segments) takes up its row again
        self.pause = LoadingPause()  # the t2v program's collector waits while the run loads (t2v.cli.startup)

    def __enter__(self) -> "GenerationProgress":
        self.progress.__enter__()
        self.pause.start()
        return self

    def __exit__(self, *exc) -> None:
        self.pause.end()
        self.progress.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage != "load":
            self.pause.end()
        self.interrupt.cancellable = event.stage in ("denoise", "post")
        if event.stage != self.stage:
            if self.task is not None:
                t = self.progress.tasks[self.task]
                self.progress.update(self.task, completed=t.total or 1, total=t.total or 1, until=None)
            self.stage = event.stage
            if event.stage == "done":
                return
            self.task = self.tasks.get(event.stage)
            if self.task is None:
                self.task = self.tasks[event.stage] = self.progress.add_task(_LABELS.get(event.stage, event.stage),
                                                                             total=event.total or None)
        if event.stage in ("denoise", "post") and event.total:
            label = _LABELS.get(event.stage, event.stage)
            if event.stage == "denoise" and event.message.startswith("segment "):
                label = f"{label} ({event.message})"
            self.progress.update(self.task, completed=event.step, total=event.total, description=label)
        if event.stage in ("denoise", "decode"):
            self.progress.update(self.task, until=until(event.eta_s))
