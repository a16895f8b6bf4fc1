"""Post-processing an existing clip (``t2v post``): decode it, run the stage, write the result with the input's
record kept and the steps appended (``postprocess``), plus what was done to which file (``post_history``:
each run's spec, crf, input's sha256 and the frames' sha256 before and after, so the chain can be made again and
checked step by step: :mod:`t2v.post.replay`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2v.errors import ExportError, InvalidRequest
from t2v.requests import PostSpec
from t2v.export import (
    decode_video,
    frames_sha256,
    read_embedded,
    remove_output,
    sha256_file,
    write_outputs,
    write_sidecar,
)
from t2v.export.audio import Audio, fit, read_audio
from t2v.export.outputs import check_outputs
from t2v.progress import ProgressEmitter
from t2v.inputs import VIDEO_ACCEPTED, video_extension

POST_FORMATS = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}
DEFAULT_FPS = 8.0  # a clip whose container names no rate


@dataclass
class PostResult:
    frames: np.ndarray
    fps: float
    record: dict[str, Any]
    outputs: list = field(default_factory=list)
    sidecar: Path | None = None


def post_spec(fields: dict[str, Any] | None, *, allow_empty: bool = False):
    """A :class:`~t2v.requests.PostSpec` from request-style fields; InvalidRequest naming ``post.<field>``, or
    saying there is nothing to do (unless ``allow_empty``: the sound alone changes)."""
    try:
        spec = PostSpec.model_validate(fields or {})
    except InvalidRequest as err:
        raise InvalidRequest(f"post.{err}", field=f"post.{err.field}") from None
    if not spec.active and not allow_empty:
        raise InvalidRequest("post: nothing to do; give interpolate (--interpolate 2), target_fps, upscale "
                             "(--upscale 2), deflicker, or a sound file (--audio FILE)", field="post")
    return spec


def post_file(clip: str | Path, output: str | Path, fields: dict[str, Any] | None, *, crf: int | None = None,
              on_progress=None, should_cancel: Callable[[], bool] | None = None, max_frames: int | None = None,
              max_side: int | None = None, audio: str | Path | None = None, keep_audio: bool = True) -> PostResult:
    """Post-process the video file ``clip`` into ``output`` (.mp4, .webm or .gif); all or nothing.

    The clip's sound is kept (``keep_audio=False`` drops it), or replaced by the sound file ``audio``; either is
    trimmed or padded with silence to the new clip's length, so picture and sound still end together. ``audio``
    alone, with no post step, only sets the clip's sound."""
    from t2v.post.stage import check_post, post_record, run_post  # deferred: imports PIL

    spec = post_spec(fields, allow_empty=audio is not None or not keep_audio)
    clip, output = Path(clip).expanduser(), Path(output).expanduser()
    fmt = POST_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise InvalidRequest(f"output: {output.name!r} must end in .mp4, .webm or .gif (e.g. "
                             f"{output.with_suffix('.mp4').name})", field="output")
    if not clip.is_file():
        raise InvalidRequest(f"clip: {clip} does not exist or is not a file", field="clip")
    with open(clip, "rb") as f:  # the same kinds POST /v1/assets takes as a video, named by the first bytes
        if video_extension(f.read(16)) is None:
            raise InvalidRequest(f"clip: {clip.name} is not a video ({VIDEO_ACCEPTED} expected)", field="clip")
    if output.exists() and output.resolve() == clip.resolve():
        raise InvalidRequest(f"output: {output} is the input; choose another name", field="output")
    stem = output.with_suffix("")
    check_outputs(stem, [fmt])
    try:
        frames, fps = decode_clip(clip)
    except ExportError as e:
        raise InvalidRequest(f"clip: {e}", field="clip") from None
    if len(frames) < 2:  # as the API: one frame is an image, not a clip to post-process
        raise InvalidRequest(f"clip: {clip.name} has a single frame; give a video ({VIDEO_ACCEPTED}) of at least 2 "
                             "frames", field="clip")
    check_post(spec, fps, num_frames=len(frames), width=frames.shape[2], height=frames.shape[1], max_frames=max_frames,
               max_side=max_side)
    sound = clip_sound(clip, audio, keep_audio)
    try:
        record = read_embedded(clip)
    except Exception:  # any clip will do; one t2v did not write has no record to keep
        record = {}
    t0 = time.perf_counter()
    emit = ProgressEmitter(on_progress, t0)
    new, new_fps, steps = run_post(frames, fps, spec, emit=emit, cancel=should_cancel)
    earlier = (record.get("postprocess") or {}).get("steps", [])
    record = {**record, "postprocess": post_record([*earlier, *steps], new, new_fps)}
    record["post_history"] = [*record.get("post_history", []), {  # frame hashes both sides: a replay checks each step
        "post": spec.model_dump(), "input": clip.name, "input_sha256": sha256_file(clip), "input_fps": fps,
        "input_frames_sha256": frames_sha256(frames), "frames_sha256": record["postprocess"]["frames_sha256"],
        "crf": crf, "seconds": round(time.perf_counter() - t0, 4)}]
    record.pop("audio", None)
    if sound is not None:
        sound = fit(sound, len(new) / new_fps)
        record["audio"] = {**sound.to_record(), "source": Path(audio).name if audio is not None else "input"}
    if audio is not None or not keep_audio:
        record["post_history"][-1].update(audio=record.get("audio"), keep_audio=keep_audio)
    emit("export", message=f"encoding {fmt}")
    outputs = write_outputs(new, stem, [fmt], new_fps, metadata=dict(record), crf=crf, audio=sound)
    record["outputs"] = [o.to_dict() for o in outputs]
    try:
        sidecar = write_sidecar(record, stem.with_name(stem.name + ".json"))
    except BaseException:
        for o in outputs:
            remove_output(o.path)
        raise
    emit("done", message="done")
    return PostResult(new, new_fps, record, outputs, sidecar)


def clip_sound(clip: Path, audio: str | Path | None, keep_audio: bool) -> Audio | None:
    """The sound a post run writes: the file ``audio`` (InvalidRequest when it has none), else the clip's own
    track unless ``keep_audio`` is False (None when it has none)."""
    if audio is not None:
        sound = read_audio(Path(audio).expanduser(), name="audio")
        if sound is None:
            raise InvalidRequest(f"audio: {Path(audio).name} has no audio track; give a sound file (WAV, MP3, AAC, "
                                 "Opus, FLAC) or a video with sound", field="audio")
        return sound
    if not keep_audio:
        return None
    try:
        return read_audio(clip, name="clip")
    except InvalidRequest as e:
        raise InvalidRequest(f"{e}; pass --no-audio (keep_audio=False) to drop its sound", field="clip") from None


def decode_clip(path: Path) -> tuple[np.ndarray, float]:
    """The clip's frames ((F, H, W, 3) uint8) and fps (its record's, else the container's, else 8)."""
    frames, fps = decode_video(path)
    return frames, round(fps, 3) if fps and fps > 0 else DEFAULT_FPS
