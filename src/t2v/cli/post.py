"""``t2v post``: the post-processing stage (:mod:`t2v.post`) on an existing clip, and the flags ``t2v generate``
shares with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from t2v.cli.common import JSON_OUTPUT, Interrupt, cli_errors, out, print_json_lines, stdout_kept_for_json
from t2v.cli.options import with_request_options
from t2v.cli.run import OVERWRITE, refuse_taken
from t2v.requests import POST_FORMATS, PostRequest, request_from_fields
from t2v.cli.progress import GenerationProgress
from t2v.record import environment_differences

@with_request_options(PostRequest, "post", post=True, only=("crf",))
def post(
    clip: Path = typer.Argument(..., help="An MP4, WebM or GIF (t2v's, with its record, or any other)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write: OUT.mp4, OUT.webm or OUT.gif."),
    audio: Optional[Path] = typer.Option(None, "--audio",
                                         help="Sound for the clip (WAV, MP3, AAC, Opus, FLAC or a video's track), trimmed or padded to its length."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Drop the clip's sound (it is kept by default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    as_json: bool = JSON_OUTPUT,
    overwrite: bool = OVERWRITE,
    fields: dict = None,
) -> None:
    """Post-process an existing clip: deflicker, interpolate, upscale; set or drop its sound.

    A t2v clip keeps its record, with the steps appended (in the file and in OUT.json). Its sound is kept in
    step with the frames (trimmed or padded to the new length)."""
    from t2v.post.clip import post_file  # deferred: imports numpy

    with cli_errors():
        if not overwrite:  # the clip and its record (OUT.json) of an earlier run are not replaced silently
            refuse_taken([output, output.with_suffix(".json")], inputs=[str(clip)])
        with stdout_kept_for_json(as_json), Interrupt() as interrupt, \
                GenerationProgress(interrupt, quiet=quiet) as progress:
            result = post_file(clip, output, fields.get("post"), crf=fields.get("crf"), on_progress=progress,
                               should_cancel=interrupt, audio=audio, keep_audio=not no_audio)
        if as_json:
            print_json_lines([result.record])
        elif not quiet:
            p = result.record["postprocess"]
            for o in result.outputs:
                out.print(f"[green]wrote[/] {escape(str(o.path))}  ({o.bytes:,} bytes)", highlight=False)
            out.print(f"[green]wrote[/] {escape(str(result.sidecar))}", highlight=False)
            steps = ", ".join(s["name"] for s in p["steps"]) or "no frame steps"
            sound = result.record.get("audio")
            heard = (f" · sound {sound['channels']} ch {sound['sample_rate']} Hz {sound['length_s']:.2f} s" if sound
                     else " · no sound")
            out.print(f"{steps} · {p['num_frames']} frames {p['width']}x{p['height']} @ {p['fps']:g} fps{heard}",
                      highlight=False)


def replay_post_chain(old: dict[str, Any], fields: dict[str, Any], *, output: Optional[Path], quiet: bool,
                      run) -> bool:
    """``t2v replay`` of a file made by ``t2v post``: the original made again (with ``run(request, output=,
    quiet=)``, into a work folder, in the format the first step read), then every recorded post step in order,
    the frame hashes compared after each; the last step's file goes to ``output``. True when nothing differs."""
    import tempfile

    from t2v.export.outputs import output_stem  # deferred: imports numpy
    from t2v.post.replay import history_of, replay_chain, step_format, work_path  # deferred: imports numpy

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
