"""Where a run's files go and how they are written: output names (:func:`output_stem`), the checks made before any
work (:func:`check_outputs`), and writing a result's formats and sidecar, all or nothing (:func:`export_result`)."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from t2v.errors import Cancelled, InvalidRequest, OutputNotWritable
from t2v.export.metadata import write_sidecar
from t2v.export.writers import EXTENSIONS, check_writable, remove_output, write_outputs
from t2v.requests import FORMATS

if TYPE_CHECKING:
    from t2v.progress import ProgressEmitter
    from t2v.requests import GenerationResult

_EXT_FORMATS = {"." + f: f for f in FORMATS if f != "png"}
# Video file endings of formats t2v does not write (any other ending is kept as part of the name: run.v2; image
# endings are image mode's: light.png).
OTHER_MEDIA = (".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".ogv", ".3gp")


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "video"


def output_stem(output: str | Path | None, prompt: str) -> tuple[Path, str | None]:
    """Where files go: (path without extension, format implied by the extension or None).

    ``None`` -> ``./outputs/<time>-<slug>``; an existing folder (or a path ending in /) -> a file named
    that way inside it; ``clip.mp4`` -> ``clip`` + mp4.
    """
    name = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slugify(prompt)}"
    if output is None:
        return Path("outputs") / name, None
    text = str(output)
    path = Path(text).expanduser()
    if text.endswith(("/", "\\")) or path.is_dir():
        return path / name, None
    fmt = _EXT_FORMATS.get(path.suffix.lower())
    if fmt is None and path.suffix.lower() in OTHER_MEDIA:
        raise InvalidRequest(f"output: t2v does not write {path.suffix} files; end the name in "
                             f"{', '.join(_EXT_FORMATS)} (e.g. {path.with_suffix('.mp4').name}), or give a folder",
                             field="output")
    return (path.with_suffix(""), fmt) if fmt else (path, None)


def check_outputs(stem: Path, formats, *, extra: tuple[str, ...] = (), inputs=()) -> None:
    """Refuse, before any work, outputs that could not be written: the folder (or, when it does not exist yet,
    its nearest existing parent: nothing is created here) must take new files, and no file about to be written
    (a video, the ``.json`` sidecar, ``stem`` + each of ``extra``) may be an existing folder or one of the run's
    ``inputs`` (the clip it extends, its input video or image: writing over it would lose it, and the record
    would name a file that no longer exists). Raises OutputNotWritable / InvalidRequest naming the path."""
    existing = next(p for p in (stem.parent, *stem.parent.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise OutputNotWritable(f"output: {existing} is a file, not a folder", field="output")
    try:
        check_writable(existing)  # a probe file, removed at once
    except OutputNotWritable as e:
        if existing == stem.parent:
            raise
        raise OutputNotWritable(f"output: folder {stem.parent} does not exist and cannot be made: {existing} does "
                                f"not take new folders", field="output") from e
    taken = {os.path.realpath(Path(p).expanduser()) for p in inputs if p and Path(p).expanduser().is_file()}
    for suffix in [EXTENSIONS[f] for f in formats if f != "png"] + [".json", *extra]:  # png: a folder, replaced
        path = stem.with_name(stem.name + suffix)
        if path.is_dir():
            raise OutputNotWritable(f"output: {path} is an existing folder; choose another output name", field="output")
        if os.path.realpath(path) in taken:
            raise InvalidRequest(f"output: {path} is an input of this run; choose another output name (e.g. "
                                 f"{stem.name}-2{suffix})", field="output")


def write_with_sidecar(frames, stem: Path, formats, fps: float, record: dict, *, crf: int | None = None,
                       written: list | None = None) -> tuple[list, Path]:
    """Write ``frames`` in each of ``formats`` (``record`` embedded), then ``record`` with its outputs as the
    sidecar ``<stem>.json``; all or nothing: on any failure every file written here (and those in ``written``,
    made before) is removed. Returns (all the outputs, the sidecar)."""
    outputs = list(written or [])
    try:
        outputs += write_outputs(frames, stem, formats, fps, metadata={k: v for k, v in record.items() if k != "outputs"},
                                 crf=crf)
        record["outputs"] = [o.to_dict() for o in outputs]
        sidecar = write_sidecar(record, stem.with_name(stem.name + ".json"))
    except BaseException:
        for o in outputs:
            remove_output(o.path)
        raise
    return outputs, sidecar


def export_result(result: GenerationResult, stem: Path, *, emit: ProgressEmitter, cancel: Callable[[], bool],
                  extra_files: Callable[[dict], None] | None = None, fps: float | None = None) -> None:
    """Write ``result``'s formats (record embedded) and then its sidecar; all or nothing.

    ``extra_files(record)`` may write more files (figures) and note them in the record before the sidecar.
    ``fps``: the frames' rate when post-processing changed it (else the request's). The sidecar's ``timings`` are
    the run's stages as ``emit`` timed them (``export``, the files written, is ``encode_s``), up to the sidecar; the
    files embed them as they stood when the files were begun.
    """
    record, request = result.record, result.request
    if not request.formats and extra_files is None:
        record["outputs"] = []
        stamp(record, emit)
        return
    if cancel():
        raise Cancelled("cancelled before export")
    emit("export", message="encoding " + ", ".join(request.formats))
    stamp(record, emit)  # the files embed the record as it stands when they are written
    result.outputs = write_outputs(result.frames, stem, request.formats, fps or request.fps, metadata=dict(record),
                                   crf=request.crf, audio=result.audio)
    record["outputs"] = [o.to_dict() for o in result.outputs]
    try:
        if extra_files is not None:
            extra_files(record)
        stamp(record, emit)
        result.sidecar = write_sidecar(record, stem.with_name(stem.name + ".json"))
    except BaseException:
        for o in result.outputs:
            remove_output(o.path)
        raise


def stamp(record: dict, emit: ProgressEmitter) -> None:
    """The record's ``timings``: each stage's seconds so far and ``total_s``, which they add up to."""
    record["timings"] = {**record.get("timings", {}), **{k: round(v, 4) for k, v in emit.timings().items()}}
