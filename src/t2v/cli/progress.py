"""Rich progress for generation: a spinner while loading, a bar per denoising step with ETA, then stages."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from t2v.cli.common import Interrupt, err
from t2v.request import ProgressEvent

_LABELS = {
    "load": "Loading model",
    "encode_prompt": "Encoding prompt",
    "denoise": "Denoising",
    "decode": "Decoding frames",
    "post": "Post-processing",
    "export": "Encoding files",
}


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
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=quiet,
        )
        self.task = None
        self.stage = ""
        self.tasks: dict[str, object] = {}  # a stage met again (a long video's segments) takes up its row again

    def __enter__(self) -> "GenerationProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        self.interrupt.cancellable = event.stage in ("denoise", "post")
        if event.stage != self.stage:
            if self.task is not None:
                t = self.progress.tasks[self.task]
                self.progress.update(self.task, completed=t.total or 1, total=t.total or 1)
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
