"""Options of longer videos (``t2v generate --seconds/--prompt-schedule``, ``t2v extend``), shared by both."""

from __future__ import annotations

import re
from pathlib import Path

import typer

_ENTRY = re.compile(r"^\s*\d+\s*:")

def clip_defaults(clip: Path, *, fps: float | None, width: int | None, height: int | None):
    """(fps, width, height): those given, else the clip's (its size rounded to a multiple of 8). A clip that
    cannot be read leaves them unset: the run then says what is wrong with it."""
    if fps is not None and width is not None and height is not None:
        return fps, width, height
    try:
        import av

        with av.open(str(clip)) as f:
            stream = f.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0) or None
            w, h = stream.codec_context.width, stream.codec_context.height
    except Exception:
        return fps, width, height
    return (fps or rate, width or max(16, round(w / 8) * 8), height or max(16, round(h / 8) * 8))


def spread_schedule(argv: list[str]) -> list[str]:
    """``--prompt-schedule '0: a' '48: b'`` as Click reads it, ``--prompt-schedule '0: a' --prompt-schedule '48: b'``:
    the arguments after the flag's value that look like 'INDEX: prompt' are more of its values (a Click option
    takes a fixed number of values). Everything else, and everything after ``--``, is left as it is."""
    out: list[str] = []
    i, spreading = 0, False
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if spreading and _ENTRY.match(arg):
            out += ["--prompt-schedule", arg]
        elif arg == "--prompt-schedule" and i + 1 < len(argv):
            out += [arg, argv[i + 1]]
            i, spreading = i + 2, True
            continue
        else:
            out.append(arg)
            spreading = arg.startswith("--prompt-schedule=")
        i += 1
    return out
