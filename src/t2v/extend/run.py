"""Longer videos, run: each segment a run of the family's own loop, joined at the seams, with a checkpoint
after every segment so a long video resumes after a crash from the last segment done.

The checkpoint (the run's :class:`~t2v.sampling.base.CheckpointSpec` path: a job's checkpoint on a server) holds
the frames joined so far and the number of segments done, with the run's fingerprint (request, weights,
device, dtype and the extended clip's bytes): it is only resumed by the same run. A service uploads it after
each save (``on_save``), so another machine picks the job up where the last one left it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2v.errors import Cancelled
from t2v.extend.plan import LongPlan, MAX_CLIP_FRAMES, Segment, continuation_kind, guide, join, plan_segments
from t2v.inputs import InputVideo, load_video
from t2v.sampling import checkpoint as ckpt
from t2v.sampling.checkpoint import write_state
from t2v.sampling.vae import to_uint8
from t2v.families import RunContext

logger = logging.getLogger(__name__)

KIND = "t2v-segments"


@dataclass
class LongRun:
    """What a long request made: the joined frames (uint8), the plan, and what the segments noticed."""

    frames: np.ndarray
    plan: LongPlan
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    resumed_from_segment: int | None = None

    def record(self, request, clip=None) -> dict:
        """The record's ``long`` block: every segment (kind, prompt, seed, output frames), the overlap, and the
        extended clip (its sha256, frames and fps)."""
        plan = self.plan
        out = {"frames": int(len(self.frames)), "new_frames": plan.new_frames, "continuation": plan.continuation,
               "overlap": plan.overlap, "segments": [s.to_dict(request.num_frames, plan.strength) for s in plan.segments]}
        if plan.strength is not None:
            out["continue_strength"] = plan.strength
        if clip is not None:
            out["clip"] = {"sha256": clip.sha256, "frames": int(len(clip.frames)), "fps": clip.fps}
        if self.resumed_from_segment is not None:
            out["resumed_from_segment"] = self.resumed_from_segment
        return out


def load_clip(request, resolve: Callable[[str], Path] | None = None):
    """The clip a request extends, decoded and fitted to its size (InvalidRequest naming ``extend``); None
    when it extends none. ``resolve`` maps ``extend`` (an asset id on a server) to a file. Call before loading
    weights."""
    if not request.extend:
        return None
    path = resolve(request.extend) if resolve is not None else request.extend
    return load_video(path, width=request.width, height=request.height, num_frames=None, field="extend",
                      max_frames=MAX_CLIP_FRAMES)


def fingerprint(loaded, request, clip) -> str:
    fp = ckpt.fingerprint(loaded, request)
    return hashlib.sha256(f"{fp}:{KIND}:{clip.sha256 if clip is not None else ''}".encode()).hexdigest()


def resume(spec, fp: str) -> tuple[np.ndarray, int] | None:
    """(frames so far, segments done) from ``spec``'s checkpoint when it is this run's, else None (a foreign,
    torn or unreadable file is ignored with a warning: the run starts from the first segment)."""
    import torch

    if spec is None or not spec.resume or not Path(spec.path).is_file():
        return None
    try:
        state = torch.load(spec.path, map_location="cpu", weights_only=True)
    except Exception as e:
        logger.warning("ignoring unreadable segment checkpoint %s: %s", spec.path, str(e).splitlines()[0][:200] if str(e) else e)
        return None
    if not (isinstance(state, dict) and state.get("kind") == KIND and isinstance(state.get("frames"), torch.Tensor)
            and isinstance(state.get("segments"), int)):
        logger.warning("ignoring checkpoint %s: not a t2v segment checkpoint", spec.path)
        return None
    if state.get("fingerprint") != fp:
        logger.warning("ignoring checkpoint %s: it belongs to another request", spec.path)
        return None
    return state["frames"].numpy(), state["segments"]


def save(spec, fp: str, frames: np.ndarray, segments: int) -> None:
    """Atomically write the frames so far and the segments done, then ``spec.on_save`` (a service uploads)."""
    import torch

    if spec is None:
        return
    write_state({"kind": KIND, "fingerprint": fp, "segments": int(segments),
                 "frames": torch.from_numpy(np.ascontiguousarray(frames))}, Path(spec.path))
    logger.debug("segment checkpoint after segment %d -> %s", segments, spec.path)
    if spec.on_save is not None:
        spec.on_save(Path(spec.path))


def segment_steps(plan: LongPlan, steps: int) -> list[int]:
    """Denoising steps each segment runs (a video continuation keeps ``int(steps * strength)``)."""
    return [min(int(steps * plan.strength), steps) if s.kind == "video" else steps for s in plan.segments]


def run_long(run, *, clip=None, checkpoint=None, on_preview: Callable[[int, Any], None] | None = None,
             on_frames: Callable[[np.ndarray], None] | None = None) -> LongRun:
    """Make a long request's frames with ``run`` (a started :class:`t2v.runner.core.Run`): plan the segments,
    resume from the checkpoint when it is this run's, run the rest, joining each at its seam. ``on_frames``
    (a stream) gets the frames final so far after each segment: all but those the next seam will cross-fade."""
    from PIL import Image

    request, loaded, family = run.request, run.loaded, run.family
    kind = continuation_kind(family.rules(Path(run.source.path)).modes, family.encodes_video)
    plan = plan_segments(request, clip_frames=len(clip.frames) if clip is not None else 0, continuation=kind)
    fp = fingerprint(loaded, request, clip)
    frames = clip.frames if clip is not None else np.zeros((0, request.height, request.width, 3), np.uint8)
    done, result = 0, LongRun(frames, plan)
    if (state := resume(checkpoint, fp)) is not None:
        frames, done = state
        result.resumed_from_segment = done
        logger.info("resuming a long video after segment %d of %d", done, len(plan.segments))
    steps = segment_steps(plan, request.num_inference_steps)
    total, offset = sum(steps), sum(steps[:done])
    run.emit.decodes = len(plan.segments) - done  # one decode per segment (the ETA counts them)
    for seg in plan.segments[done:]:
        if run.cancel():
            raise Cancelled(f"cancelled before segment {seg.index + 1} of {len(plan.segments)}")
        sub, image, video = segment_request(request, seg, plan, frames)

        def on_step(step: int, _total: int, latents, seg=seg, base=offset) -> None:
            run.emit("denoise", base + step, total, message=f"segment {seg.index + 1}/{len(plan.segments)}")
            if on_preview is not None:
                on_preview(base + step, family.preview(loaded, latents))

        if image is not None:
            image = Image.fromarray(image)
        elif seg.kind == "image" and run.image is not None:  # the first segment, from the request's image
            image = run.image.image
        def on_stage(stage: str, step: int = 0, _total: int = 0, seg=seg, base=offset) -> None:
            if stage == "denoise":  # this segment's steps as the whole run's
                run.emit(stage, base + step, total, message=f"segment {seg.index + 1}/{len(plan.segments)}")
            else:
                run.emit(stage)

        ctx = RunContext(on_stage=on_stage, on_step=on_step, should_cancel=run.cancel,
                         memory=run.memory, image=image,
                         video=None if video is None else InputVideo(frames=video, sha256=_sha(video),
                                                                      source_frames=len(video), fps=request.fps))
        out = family.run(loaded, sub, ctx)
        frames = join(frames, to_uint8(out.frames), seg.overlap)
        offset += steps[seg.index]
        result.warnings += [w for w in out.warnings if w not in result.warnings]
        for k, v in out.timings.items():
            result.timings[k] = result.timings.get(k, 0.0) + v
        save(checkpoint, fp, frames, seg.index + 1)
        if on_frames is not None:
            after = plan.segments[seg.index + 1].overlap if seg.index + 1 < len(plan.segments) else 0
            on_frames(frames[:min(plan.total, len(frames) - after)])
    result.frames = frames[:plan.total]
    return result


def segment_request(request, seg: Segment, plan: LongPlan, frames: np.ndarray):
    """(the request one segment runs, its input image or None, its guide clip or None)."""
    update: dict[str, Any] = {"prompt": seg.prompt, "seed": seg.seed, "seconds": None, "prompt_schedule": None,
                              "extend": None, "overlap": None, "continue_strength": None}
    image = video = None
    if seg.kind == "image" and seg.overlap:  # continuation: the last frame so far is the first
        image = frames[-1]
        update["image"] = f"segment {seg.index}: frame {len(frames) - 1}"
    elif seg.kind == "video":
        video = guide(frames, seg.overlap, request.num_frames)
        update.update(video=f"segment {seg.index}: frames {len(frames) - seg.overlap}-{len(frames) - 1}",
                      strength=plan.strength)
    return request.model_copy(update=update), image, video


def _sha(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()

