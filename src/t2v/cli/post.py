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
INTERPOLATION = typer.Option("auto", "--interpolation", help="auto (optical flow), flow, minterpolate (FFmpeg), blend, "
                             "or rife (your model folder in --interpolation-model; pip install 't2v\\[rife]').")
INTERPOLATION_MODEL = typer.Option(None, "--interpolation-model", help="rife: the RIFE model folder (flownet.param "
                                   "and flownet.bin, e.g. rife-v4.6).")
UPSCALE = typer.Option(None, "--upscale", help="Upscale 2 or 4 times.")
UPSCALER = typer.Option("lanczos", "--upscaler", help="lanczos, realesrgan, realesrgan-anime "
                        "(pip install 't2v\\[upscale]'), or an ESRGAN-family weight file.")
DEFLICKER = typer.Option(False, "--deflicker", help="Smooth frame-to-frame brightness and colour flicker.")
POST_FORMATS = ("mp4", "webm", "gif")


def post_fields(*, interpolate=None, target_fps=None, interpolation="auto", upscale=None, upscaler="lanczos",
                deflicker=False, interpolation_model=None) -> dict[str, Any] | None:
    """The request's ``post`` block from the flags (None when no step is asked for)."""
    if interpolate is None and target_fps is None and upscale is None and not deflicker:
        return None  # 0 is a value the post block refuses, naming the nearest valid one, not "no step"
    return {"interpolate": interpolate, "target_fps": target_fps, "interpolation": interpolation, "upscale": upscale,
            "upscaler": upscaler, "deflicker": deflicker,
            **({"interpolation_model": str(interpolation_model)} if interpolation_model else {})}


def post(
    clip: Path = typer.Argument(..., help="An MP4, WebM or GIF (t2v's, with its record, or any other)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: OUT.mp4, OUT.webm or OUT.gif."),
    interpolate: Optional[int] = INTERPOLATE,
    target_fps: Optional[float] = TARGET_FPS,
    interpolation: str = INTERPOLATION,
    interpolation_model: Optional[Path] = INTERPOLATION_MODEL,
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
                             upscale=upscale, upscaler=upscaler, deflicker=deflicker,
                             interpolation_model=interpolation_model)
        with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=quiet) as progress:
            result = post_file(clip, output, fields, crf=crf, on_progress=progress, should_cancel=interrupt)
        if not quiet:
            p = result.record["postprocess"]
            for o in result.outputs:
                out.print(f"[green]wrote[/] {o.path}  ({o.bytes:,} bytes)", highlight=False)
            out.print(f"[green]wrote[/] {result.sidecar}", highlight=False)
            steps = ", ".join(s["name"] for s in p["steps"])
            out.print(f"{steps} · {p['num_frames']} frames {p['width']}x{p['height']} @ {p['fps']:g} fps", highlight=False)


def replay_post_chain(old: dict[str, Any], fields: dict[str, Any], *, output: Optional[Path], quiet: bool,
                      run) -> bool:
    """``t2v replay`` of a file made by ``t2v post``: the original made again (with ``run(request, output=,
    quiet=)``, into a work folder, in the format the first step read), then every recorded post step in order,
    the frame hashes compared after each; the last step's file goes to ``output``. True when nothing differs."""
    import tempfile

    from t2v.cli.progress import GenerationProgress
    from t2v.export.outputs import output_stem
    from t2v.post.replay import history_of, replay_chain, step_format, work_path
    from t2v.record import environment_differences
    from t2v.requests import request_from_fields

    history = history_of(old)
    first = step_format(history, 0)
    stem, implied = output_stem(output, str(old.get("prompt") or "video"))
    fmt = implied or next((o.get("format") for o in old.get("outputs") or [] if o.get("format") in POST_FORMATS), "mp4")
    final = stem.with_name(f"{stem.name}.{fmt}")

    def say(check) -> None:
        verdict = {True: "[green]identical[/]", False: "[bold yellow]differs[/]", None: "made (no hash recorded)"}
        why = " (its input differs)" if check.input_same is False else ""
        out.print(f"step {check.index}/{len(history)} {check.describe()}: {verdict[check.same]}{why}", highlight=False)

    with tempfile.TemporaryDirectory(prefix="t2v-replay-") as work:
        request = request_from_fields({**fields, "formats": (first,), "mode": old.get("mode", "video")})
        base = run(request, output=work_path(work, history, 0), quiet=quiet)
        same_base = base.record["frames_sha256"] == old.get("frames_sha256")
        if not quiet:
            verdict = "[green]identical[/]" if same_base else "[bold yellow]differs[/]"
            out.print(f"generation: {verdict}", highlight=False)
        with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=quiet) as progress:
            chain = replay_chain(old, base.outputs[0].path, final, work, on_progress=progress, should_cancel=interrupt,
                                 on_step=None if quiet else say)
    if not quiet:
        for o in chain.result.outputs:
            out.print(f"[green]wrote[/] {o.path}  ({o.bytes:,} bytes)", highlight=False)
    differs = chain.first_difference
    if same_base and differs is None:
        out.print(f"[bold green]identical frames[/] to the record: the generation and all {len(history)} post step(s)",
                  highlight=False)
        return True
    diffs = environment_differences(old, base.record)
    why = "; ".join(diffs) if diffs else "same device, dtype, model and versions"
    where = "the generation" if not same_base else f"step {differs.index} of {len(history)} ({differs.describe()})"
    out.print(f"[bold yellow]frames differ[/] from the record at {where} ({why})", highlight=False)
    return False
