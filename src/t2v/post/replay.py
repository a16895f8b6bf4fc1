"""Replay of a post-processing chain (``t2v replay`` of a file made by ``t2v post``, once or several times): the
original is generated again by the caller into the format the first ``t2v post`` read, then each
``post_history`` entry is applied again in order, with its recorded spec and crf, through :func:`post_file` (so
the clip is decoded from the encoded file just as it was). After every step the frame hashes are compared with
the ones recorded; the first step that differs is named.

Records written before the per-step hashes existed only hold the final one (``postprocess.frames_sha256``):
their earlier steps are reported as not recorded, and only the last one is checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from t2v.errors import InvalidRequest
from t2v.post.clip import POST_FORMATS, PostResult, post_file


@dataclass
class StepCheck:
    """One ``post_history`` step made again: its number (1-based), spec, and the hashes recorded and made."""

    index: int
    post: dict[str, Any]
    expected: str | None
    got: str
    expected_input: str | None = None
    got_input: str | None = None

    @property
    def input_same(self) -> bool | None:
        return None if self.expected_input is None else self.expected_input == self.got_input

    @property
    def same(self) -> bool | None:
        """True or False; None when the record holds no hash for this step."""
        if self.input_same is False:
            return False
        return None if self.expected is None else self.expected == self.got

    def describe(self) -> str:
        """e.g. "interpolate 2x (auto)", "deflicker, upscale 2x (lanczos)"."""
        p, parts = self.post, []
        if p.get("deflicker"):
            parts.append("deflicker")
        if p.get("interpolate") or p.get("target_fps"):
            rate = f"{p['interpolate']}x" if p.get("interpolate") else f"to {p['target_fps']:g} fps"
            parts.append(f"interpolate {rate} ({p.get('interpolation', 'auto')})")
        if p.get("upscale"):
            parts.append(f"upscale {p['upscale']}x ({Path(str(p.get('upscaler', 'lanczos'))).name})")
        return ", ".join(parts) or "nothing"


@dataclass
class ChainReplay:
    steps: list[StepCheck] = field(default_factory=list)
    result: PostResult | None = None

    @property
    def first_difference(self) -> StepCheck | None:
        return next((s for s in self.steps if s.same is False), None)


def history_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's ``post_history`` (empty for a record that ``t2v post`` never touched)."""
    history = record.get("post_history") or []
    if not isinstance(history, list) or not all(isinstance(h, dict) and isinstance(h.get("post"), dict)
                                                for h in history):
        raise InvalidRequest("record: post_history is not a list of post steps", field="post_history")
    return history


def step_format(history: list[dict[str, Any]], i: int) -> str:
    """The format (mp4, webm, gif) of the file step ``i`` (0-based) read."""
    suffix = Path(str(history[i].get("input", ""))).suffix.lower()
    if suffix not in POST_FORMATS:
        raise InvalidRequest(f"record: post step {i + 1} read {history[i].get('input')!r}, not an .mp4, .webm or "
                             ".gif; the chain cannot be made again", field="post_history")
    return POST_FORMATS[suffix]


def input_name(history: list[dict[str, Any]], i: int) -> str:
    """The name of the file step ``i`` read (no folders: it is made again inside the work folder)."""
    return Path(str(history[i].get("input") or f"step{i}.{step_format(history, i)}")).name


def work_path(workdir: str | Path, history: list[dict[str, Any]], i: int) -> Path:
    """Where the file step ``i`` read is made again: its own name (as recorded), in a folder of its own (two steps
    may have read files of the same name)."""
    folder = Path(workdir) / str(i)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / input_name(history, i)


def replay_chain(record: dict[str, Any], base: str | Path, output: str | Path, workdir: str | Path, *,
                 on_progress=None, should_cancel: Callable[[], bool] | None = None,
                 on_step: Callable[[StepCheck], None] | None = None) -> ChainReplay:
    """Apply ``record``'s ``post_history`` again to ``base`` (the original made again, in the format of the
    first step's input: :func:`work_path` of step 0); the intermediate files go in ``workdir`` and the last step's
    in ``output``.
    ``on_step(check)`` is called after each step."""
    history = history_of(record)
    if not history:
        raise InvalidRequest("record: no post_history to replay", field="post_history")
    final_hash = (record.get("postprocess") or {}).get("frames_sha256")
    done = ChainReplay()
    clip = Path(base)
    for i, entry in enumerate(history):
        last = i == len(history) - 1
        target = Path(output) if last else work_path(workdir, history, i + 1)
        result = post_file(clip, target, entry["post"], crf=entry.get("crf"), on_progress=on_progress,
                           should_cancel=should_cancel)
        made = result.record["post_history"][-1]
        expected = entry.get("frames_sha256") or (final_hash if last else None)
        check = StepCheck(i + 1, entry["post"], expected, made["frames_sha256"],
                          entry.get("input_frames_sha256"), made["input_frames_sha256"])
        done.steps.append(check)
        if on_step is not None:
            on_step(check)
        done.result, clip = result, target
    return done


__all__ = ["ChainReplay", "StepCheck", "history_of", "input_name", "replay_chain", "step_format", "work_path"]
