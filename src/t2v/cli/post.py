"""``t2v post``: the post-processing stage (:mod:`t2v.post`) on an existing clip, and the flags ``t2v generate``
shares with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from t2v.cli.common import Interrupt, cli_errors, out

INTERPOLATE = typer.Option(None, "--interpolate", help="Frame interpolation: N frames per input frame (2-8); "
                           "the fps is multiplied by N.")
TARGET_FPS = typer.Option(None, "--target-fps", help="Frame interpolation to this fps (a whole multiple of the clip's).")
INTERPOLATION = typer.Option("auto", "--interpolation", help="auto (optical flow), flow, minterpolate (FFmpeg) or blend.")
UPSCALE = typer.Option(None, "--upscale", help="Upscale 2 or 4 times.")
UPSCALER = typer.Option("lanczos", "--upscaler", help="lanczos, realesrgan, realesrgan-anime "
                        "(pip install 't2v\\[upscale]'), or an ESRGAN-family weight file.")
DEFLICKER = typer.Option(False, "--deflicker", help="Smooth frame-to-frame brightness and colour flicker.")
POST_FORMATS = ("mp4", "webm", "gif")


def post_fields(*, interpolate=None, target_fps=None, interpolation="auto", upscale=None, upscaler="lanczos",
                deflicker=False) -> dict[str, Any] | None:
    """The request's ``post`` block from the flags (None when no step is asked for)."""
    if not (interpolate or target_fps or upscale or deflicker):
        return None
    return {"interpolate": interpolate, "target_fps": target_fps, "interpolation": interpolation, "upscale": upscale,
            "upscaler": upscaler, "deflicker": deflicker}


def post(
    clip: Path = typer.Argument(..., help="An MP4, WebM or GIF (t2v's, with its record, or any other)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: OUT.mp4, OUT.webm or OUT.gif."),
    interpolate: Optional[int] = INTERPOLATE,
    target_fps: Optional[float] = TARGET_FPS,
    interpolation: str = INTERPOLATION,
    upscale: Optional[int] = UPSCALE,
    upscaler: str = UPSCALER,
    deflicker: bool = DEFLICKER,
    crf: Optional[int] = typer.Option(None, "--crf", min=0, max=51, help="MP4/WebM quality, 0-51, lower is better."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
) -> None:
    """Post-process an existing clip: deflicker, interpolate, upscale. A t2v clip keeps its record, with the steps
    appended (in the file and in OUT.json)."""
    from t2v.cli.progress import GenerationProgress
    from t2v.post.clip import post_file

    with cli_errors():
        fields = post_fields(interpolate=interpolate, target_fps=target_fps, interpolation=interpolation,
                             upscale=upscale, upscaler=upscaler, deflicker=deflicker)
        with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=quiet) as progress:
            result = post_file(clip, output, fields, crf=crf, on_progress=progress, should_cancel=interrupt)
        if not quiet:
            p = result.record["postprocess"]
            for o in result.outputs:
                out.print(f"[green]wrote[/] {o.path}  ({o.bytes:,} bytes)", highlight=False)
            out.print(f"[green]wrote[/] {result.sidecar}", highlight=False)
            steps = ", ".join(s["name"] for s in p["steps"])
            out.print(f"{steps} · {p['num_frames']} frames {p['width']}x{p['height']} @ {p['fps']:g} fps", highlight=False)
