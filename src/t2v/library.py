"""The library's front door: :func:`generate`, the one-liner (a prompt and the request's field names, or a request
object), and :class:`Video`, what it returns: the frames, the record, and :meth:`Video.save`."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, fields as dataclass_fields
from pathlib import Path
from typing import Any, Callable

from t2v.errors import InvalidRequest
from t2v.requests import FORMATS, GenerationResult, ProgressEvent, parse_formats, request_from_fields
from t2v.settings import Settings, get_settings

# generate()'s own arguments (how to run), beside the request's fields (what to make)
RUN_ARGUMENTS = ("output", "on_progress", "should_cancel", "checkpoint", "on_preview", "resolve_image",
                 "resolve_video", "resolve_job", "stream")


@dataclass
class Video(GenerationResult):
    """A generated clip: ``frames`` ((frames, H, W, 3) uint8 RGB), ``record`` (the JSON record: everything needed
    to make it again), ``request`` (resolved: model, seed and defaults filled in), and the files written so far
    (``outputs``, ``sidecar``)."""

    @property
    def fps(self) -> float:
        """The frames' rate (post-processing may have changed the request's)."""
        return float((self.record.get("postprocess") or {}).get("fps") or self.request.fps)

    def save(self, path: str | Path, *, formats: tuple[str, ...] | list[str] | None = None,
             crf: int | None = None) -> list[Path]:
        """Write the clip as the CLI does: ``path`` is a file (``clip.mp4``; its ending picks the format), a stem
        or a folder; ``formats`` adds mp4, webm, gif or png (a folder of frames). The record is embedded in each
        file and written beside them as ``<stem>.json``, all or nothing. Returns the paths written."""
        # deferred: imports numpy, and PyAV when saving
        from t2v.export.outputs import check_outputs, output_stem, write_with_sidecar

        stem, implied = output_stem(path, self.request.prompt)
        try:
            chosen = parse_formats(list(formats or ()) or [implied or "mp4"], FORMATS)
        except ValueError as e:
            raise InvalidRequest(f"formats: {e}", field="formats") from None
        if implied and implied not in chosen:
            chosen = (implied, *chosen)
        check_outputs(stem, chosen)
        record = {**self.record, "formats": list(chosen), "crf": crf if crf is not None else self.record.get("crf")}
        outputs, sidecar = write_with_sidecar(self.frames, stem, chosen, self.fps, record, crf=record["crf"])
        self.record, self.outputs, self.sidecar = record, outputs, sidecar
        return [o.path for o in outputs] + [sidecar]


class _Bar:
    """A progress bar (tqdm's: a terminal's or a notebook's) fed by the runner's progress events."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=0, unit="step", leave=True)

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "denoise" and event.total:
            if self.bar.total != event.total:  # the steps start: count (and time) them from here
                self.bar.reset(total=event.total)
            self.bar.n = event.step
        self.bar.set_description(event.stage.replace("_", " "), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _interactive() -> bool:
    """A terminal or a notebook is watching: show progress by default. A notebook is an IPython shell with a
    kernel in this process; ipykernel merely imported (by a tool that runs notebooks elsewhere) is not one."""
    if sys.stderr.isatty():
        return True
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # an IPython too old or half imported: no notebook here
        return False
    return getattr(shell, "kernel", None) is not None


@contextmanager
def _third_party_bars_off():
    """transformers', diffusers' and the hub's own progress bars (``Loading weights``, downloads) off while the
    block runs, then as they were."""
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub
    import transformers.utils.logging as transformers_logging

    restore = [module.enable_progress_bar for module in (transformers_logging, diffusers_logging)
               if module.is_progress_bar_enabled()]
    if not hub.are_progress_bars_disabled():
        restore.append(hub.enable_progress_bars)
    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
    hub.disable_progress_bars()
    try:
        yield
    finally:
        for enable in restore:
            enable()


def generate(request: Any, /, *, model: str | None = None, seed: int | None = None, progress: bool | None = None,
             settings: Settings | None = None, **fields: Any) -> Video:
    """Make a video (or a sequence, an image, a post-processing run) and return it as a :class:`Video`.

    ``t2v.generate("a red circle moving right", model="t2v-shapes", seed=1, num_frames=8)`` takes the request's
    field names (those of :class:`t2v.requests.GenerationRequest`; ``mode="sequence"`` etc. for the other
    kinds); a bad value raises :class:`~t2v.errors.InvalidRequest` naming the field and the nearest valid value.
    From a prompt nothing is written unless ``output`` (or ``formats``) is given: call :meth:`Video.save`.
    ``t2v.generate(request)`` runs a request object as given (its ``formats`` written to ``output``, default
    ``./outputs/<time>-<slug>``). A progress bar shows in a terminal or notebook unless ``progress=False``.
    The runner's own arguments (``output``, ``on_progress``, ``should_cancel``, ``checkpoint``, ``on_preview``,
    ``resolve_image`` / ``resolve_video`` / ``resolve_job``, ``stream``) pass through.
    """
    # deferred: imports PIL, numpy; the runner imports torch and diffusers: not at `import t2v`
    from t2v.runner.modes import generate as run

    run_args = {k: fields.pop(k) for k in RUN_ARGUMENTS if k in fields}
    if isinstance(request, str):
        if "formats" not in fields and run_args.get("output") is None:
            fields["formats"] = ()
        request = request_from_fields({"prompt": request, "model": model, "seed": seed, **fields})
    elif fields or model is not None or seed is not None:
        given = sorted([*fields, *(["model"] if model is not None else []), *(["seed"] if seed is not None else [])])
        raise InvalidRequest(f"{given[0]}: give the fields in the request object, or a prompt and the fields "
                             "(t2v.generate(prompt, model=..., seed=..., num_frames=...))", field=given[0])
    elif not hasattr(request, "mode"):
        raise InvalidRequest(f"request: expected a prompt or a request, got {type(request).__name__}", field="request")
    bar = _Bar() if (progress if progress is not None else _interactive()) else None
    if bar is not None:
        listener: Callable[[ProgressEvent], None] | None = run_args.get("on_progress")

        def both(event: ProgressEvent) -> None:
            bar(event)
            if listener is not None:
                listener(event)

        run_args["on_progress"] = both
    try:
        if bar is None:  # no bar of t2v's: none of the libraries' either
            with _third_party_bars_off():
                result = run(request, settings=settings or get_settings(), **run_args)
        else:
            result = run(request, settings=settings or get_settings(), **run_args)
    finally:
        if bar is not None:
            bar.close()
    return Video(**{f.name: getattr(result, f.name) for f in dataclass_fields(GenerationResult)})


def load_pipeline(model: str, *, device: str = "auto", dtype: str = "auto", settings: Settings | None = None):
    """Load (and cache) a model's components for ``device``/``dtype``; later ``generate`` calls reuse them."""
    from t2v.runner import runtime  # deferred: the runner and families load on first use, not at `import t2v`

    return runtime.load_pipeline(model, device=device, dtype=dtype, settings=settings or get_settings())
