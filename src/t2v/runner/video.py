"""Video mode: text-to-video, image-to-video (``request.image``), video-to-video (``request.video``) and longer
videos (``seconds``, ``prompt_schedule``, ``extend``: :mod:`t2v.extend`), each with the family's own loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from t2v.export.outputs import check_outputs
from t2v.export.stream import ClipStream, StreamSpec
from t2v.extend.run import load_clip, run_long
from t2v.families import RunContext
from t2v.requests import FILE_FIELDS, GenerationResult
from t2v.runner.core import ProgressCallback, Run, finish, observe_times, start
from t2v.sampling.vae import to_uint8
from t2v.settings import Settings

if TYPE_CHECKING:
    import numpy as np


def input_files(request) -> list:
    """The files a video request reads (none may be overwritten by its outputs)."""
    values = [getattr(request, n, None) for n in FILE_FIELDS]
    return [v for value in values for v in (value if isinstance(value, tuple) else (value,))]


def generate_video(request, *, on_progress: ProgressCallback | None = None, should_cancel: Callable[[], bool] | None = None,
                   output: str | Path | None = None, checkpoint=None, settings: Settings,
                   on_preview: Callable[[int, np.ndarray], None] | None = None,
                   resolve_image: Callable[[str], Path] | None = None,
                   resolve_video: Callable[[str], Path] | None = None,
                   admitted: dict | None = None, stream: bool | str | Path | StreamSpec | None = None) -> GenerationResult:
    """Video mode (text-to-video, image-to-video with ``request.image``, video-to-video with ``request.video``):
    the options are :func:`t2v.runner.modes.generate`'s. ``stream``: write the clip while it is made, as a
    fragmented MP4 at that path (True: the run's own ``.mp4`` name; a :class:`~t2v.export.stream.StreamSpec`:
    its path, and its ``on_part`` after each part), each part as soon as it is finished
    (:mod:`t2v.export.stream`); the finished files are written as always at the end."""
    clip: list = []  # the clip a long request extends, read before any weights load

    def outputs(stem: Path, req) -> None:
        if req.formats:
            check_outputs(stem, req.formats, inputs=input_files(req))
        if req.is_long:
            clip.append(load_clip(req, resolve=resolve_video))

    run = start(request, settings=settings, output=output, on_progress=on_progress, should_cancel=should_cancel,
                check=outputs, plan_memory=True, resolve_image=resolve_image, resolve_video=resolve_video,
                admitted=admitted)
    spec = stream if isinstance(stream, StreamSpec) else StreamSpec(
        run.stem.with_name(run.stem.name + ".mp4") if stream is True else Path(stream)) if stream else None
    growing = None if spec is None else ClipStream(spec.path, run.request.fps, on_part=spec.on_part)
    try:
        result = made(run, clip[0] if run.request.is_long else None, growing, checkpoint=checkpoint,
                      on_preview=on_preview)
    except BaseException:
        if growing is not None:  # a failed or cancelled run leaves no partial stream
            growing.discard()
        raise
    if stream is True and growing.path not in {o.path for o in result.outputs}:
        growing.discard()  # streamed under the run's name, finished in other formats only
    return result


def made(run: Run, extended, growing: ClipStream | None, *, checkpoint=None, on_preview=None) -> GenerationResult:
    """The frames of a started video run, recorded and exported (``growing``: streamed as they are finished)."""
    request, loaded, family = run.request, run.loaded, run.family
    on_frames = None if growing is None else growing.frames
    native = family.native_long(loaded, request, extended) if request.is_long else None
    if request.is_long and native is None:
        return finish_long(run, extended, checkpoint=checkpoint, on_preview=on_preview, growing=growing)
    if native is not None:  # made in one run by the model itself (diffusion forcing, chunks)
        long = {"method": family.long_method, "seconds": request.seconds, "frames": native.num_frames}
        request = native

    stepped: list[int] = []

    def on_step(step: int, total: int, latents) -> None:
        stepped.append(step)
        run.emit("denoise", step, total)
        if on_preview is not None:
            on_preview(step, family.preview(loaded, latents))

    ctx = RunContext(on_stage=run.emit, on_step=on_step, should_cancel=run.cancel, memory=run.memory,
                     checkpoint=checkpoint, image=run.image.image if run.image else None,
                     video=run.video if extended is None else extended,
                     last_image=run.last_image.image if run.last_image else None, control=run.control,
                     on_frames=on_frames)
    run.emit.mark("prepare")  # the run's adapters and speed options set on the model, until the family's first stage
    out = family.run(loaded, request, ctx)
    frames = to_uint8(out.frames)
    run.emit.mark("record")  # hashing the frames and building the record: a stage of its own, after the decode
    observe_times(run, run.emit.timings(), steps=len(stepped))
    record = run.record(request, frames, warnings=out.warnings, timings=timings(run, out),
                        resumed_from_step=out.resumed_from_step)
    if native is not None:
        record["long"] = long
    if extended is not None:  # the clip, then the frames made after it
        long.update(frames=len(frames), new_frames=len(frames) - len(extended.frames),
                    overlap_history=request.extras.get("overlap_history"),
                    clip={"sha256": extended.sha256, "frames": len(extended.frames), "fps": extended.fps})
        record["extend_sha256"] = extended.sha256
    ended(growing, frames)
    return finish(run, frames, record, out.warnings, audio=out.audio)


def ended(growing: ClipStream | None, frames) -> None:
    """The stream's last frames written and the file closed (before post-processing and the finished files)."""
    if growing is not None:
        growing.frames(frames)
        growing.close()


def finish_long(run: Run, clip, *, checkpoint=None, on_preview=None, growing: ClipStream | None = None) -> GenerationResult:
    """A long request (:mod:`t2v.extend`): its segments made and joined, then recorded and exported as one video."""
    out = run_long(run, clip=clip, checkpoint=checkpoint, on_preview=on_preview,
                   on_frames=None if growing is None else growing.frames)
    ended(growing, out.frames)
    run.emit.mark("record")
    record = run.record(run.request, out.frames, warnings=out.warnings, timings=timings(run, out))
    record["long"] = out.record(run.request, clip)
    if clip is not None:
        record["extend_sha256"] = clip.sha256
    return finish(run, out.frames, record, out.warnings)


def timings(run: Run, out) -> dict[str, float]:
    """The run's stages so far, as its emitter timed them, and what the family did beside them (the sidecar's
    are stamped again once the files are written)."""
    return {**run.emit.timings(), **out.timings}
