"""The runner's post mode (:class:`~t2v.requests.PostRequest`): the source clip found by its id, post-processed
exactly as ``t2v post`` does (:func:`t2v.post.clip.post_file`: the source's record kept, the steps appended as
``postprocess`` and ``post_history``), then written in each asked format, record embedded, and the sidecar."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from t2v.errors import Cancelled, InvalidRequest
from t2v.export import remove_output, write_sidecar
from t2v.export.outputs import check_outputs, write_with_sidecar
from t2v.post.clip import post_file
from t2v.requests import GenerationResult

# ref -> a local file with the clip; InvalidRequest when the id names nothing this run may read.
Resolve = Callable[[str], Path]


def run_post_request(request, *, output: str | Path | None = None, on_progress=None,
                     should_cancel: Callable[[], bool] | None = None, settings=None,
                     resolve_job: Resolve | None = None, resolve_video: Resolve | None = None) -> GenerationResult:
    """Run a post request: files go to ``output`` (a stem; default ``outputs/post-<source id>``). ``resolve_job``
    maps ``request.job`` to that job's video file, ``resolve_video`` maps ``request.asset`` to the uploaded file;
    without the one it needs the request is refused (only a service knows ids)."""
    kind, ref = request.source
    resolve = resolve_job if kind == "job" else resolve_video
    if resolve is None:
        raise InvalidRequest(f"{kind}: a post request names its source by id; run it through a service (t2v serve) "
                             "or post-process a file with t2v post / t2v.post.clip.post_file", field=kind)
    cancel = should_cancel or (lambda: False)
    stem = Path(output).expanduser() if output is not None else Path("outputs") / f"post-{ref}"
    stem = stem.with_suffix("") if stem.suffix.lower() in (".mp4", ".webm", ".gif") else stem
    check_outputs(stem, request.formats)
    source = resolve(ref)
    if cancel():
        raise Cancelled("cancelled before post-processing")
    limits = {"max_frames": settings.max_frames, "max_side": settings.max_side} if settings is not None else {}
    first, *rest = request.formats
    with tempfile.TemporaryDirectory(prefix="t2v-post-") as tmp:
        # the input as its id names it: post_history's "input" says which job or asset was post-processed
        clip = Path(tmp) / f"{ref}{source.suffix.lower()}"
        try:
            clip.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, clip)
        result = post_file(clip, stem.with_name(stem.name + f".{first}"), request.post.model_dump(), crf=request.crf,
                           on_progress=on_progress, should_cancel=cancel, **limits)
    record = result.record
    record["post_history"][-1]["source"] = {kind: ref}
    outputs = list(result.outputs)
    if rest:  # the other formats: the same frames and record (post_file wrote one)
        if cancel():
            for o in outputs:
                remove_output(o.path)
            raise Cancelled("cancelled before export")
        outputs, sidecar = write_with_sidecar(result.frames, stem, rest, result.fps, record, crf=request.crf,
                                              written=outputs)
    else:
        sidecar = write_sidecar(record, stem.with_name(stem.name + ".json"))
    return GenerationResult(request=request, frames=result.frames, record=record, outputs=outputs, sidecar=sidecar)
