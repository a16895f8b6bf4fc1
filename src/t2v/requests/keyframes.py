"""Prompts by frame index (``"48: a forest in autumn"``): sequence keyframes and a video's prompt schedule."""

from __future__ import annotations

import re
from typing import Any


_KEYFRAME = re.compile(r"^\s*(\d+)\s*:\s*(.*)$", re.DOTALL)


def parse_keyframes(items: list[Any] | tuple[Any, ...], *, first_zero: bool = True, what: str = "keyframe",
                    limit: int = 512) -> tuple[tuple[int, str], ...]:
    """``["0: a forest", "48: autumn"]`` (or ``[{"frame": 0, "prompt": ...}]``) -> ((0, "a forest"), (48, "autumn")).

    Errors name the keyframe at fault: bad syntax, an empty prompt, an index that is not after the one
    before it (out of order or duplicate), or (``first_zero``) a first keyframe other than 0. ``what`` names
    an item in messages; ``limit`` bounds the indices.
    """
    if isinstance(items, str):
        items = [items]
    if not items:
        raise ValueError(f"give at least one {what}, like '0: a forest in spring'")
    out: list[tuple[int, str]] = []
    for n, item in enumerate(items, 1):
        if isinstance(item, dict):
            frame, prompt = item.get("frame"), str(item.get("prompt", ""))
            if not isinstance(frame, int) or isinstance(frame, bool):
                raise ValueError(f"{what} {n}: 'frame' must be an integer")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            frame, prompt = item
            if not isinstance(frame, int):
                raise ValueError(f"{what} {n}: the frame index must be an integer")
            prompt = str(prompt)
        else:
            m = _KEYFRAME.match(str(item))
            if not m:
                raise ValueError(f"{what} {n}: {str(item)[:60]!r} is not 'INDEX: prompt' (e.g. '48: a forest in autumn')")
            frame, prompt = int(m.group(1)), m.group(2)
        prompt = prompt.strip()
        if not prompt:
            raise ValueError(f"{what} {n} (frame {frame}): the prompt is empty")
        if frame < 0 or frame >= limit:
            raise ValueError(f"{what} {n}: frame {frame} is outside 0..{limit - 1}")
        if out and frame == out[-1][0]:
            raise ValueError(f"{what} {n}: frame {frame} appears twice")
        if out and frame < out[-1][0]:
            raise ValueError(f"{what} {n}: frame {frame} comes after frame {out[-1][0]}; list keyframes in order")
        out.append((frame, prompt))
    if out[0][0] != 0 and first_zero:
        raise ValueError(f"the first {what} must be frame 0, not {out[0][0]}")
    return tuple(out)
