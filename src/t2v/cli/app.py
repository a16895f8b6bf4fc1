"""``t2v`` commands: generate, replay, inspect, and the ``models`` group; the order ``t2v --help`` lists them in."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from inspect import cleandoc
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from t2v.version import __version__
from t2v.cli.bench import bench
from t2v.cli.batch import batch, batches_app
from t2v.cli.cache import cache_app
from t2v.cli.help_format import plain_help
from t2v.cli.common import JSON_OUTPUT, cli_errors, fail, out, quiet_third_party, stdout_kept_for_json
from t2v.cli.post import post, replay_post_chain
from t2v.cli.extend import clip_defaults, spread_schedule
from t2v.cli.options import with_request_options
from t2v.requests import GenerationRequest, request_from_fields
from t2v.cli.run import (KEY, OVERWRITE, SERVER, STREAM, print_summary, refuse_existing, refuse_remote_stream, report,
                         run_remote, run_with_progress,
                         video_request)
from t2v.models.versions import version_for_record
from t2v.cli.models import models_app
from t2v.cli.service import history, jobs_app, keys_app, serve
from t2v.cli.sequence import image, sequence
from t2v.cli.startup import one_shot
from t2v.cli.train import data_app, eval_app, train, train_lora
from t2v.cli.desktop import desktop
from t2v.cli.records import records_app
from t2v.cli.ui import ui
from t2v.cli.worker import worker
from t2v.cli.plan import show_plan
from t2v.errors import ExportError, InvalidRequest
from t2v.extras import missing_extra
from t2v.record import environment_differences, request_fields
from t2v.models.device import set_threads

# The top-level commands as `t2v --help` lists them: in the order a newcomer meets them, under headings.
PANELS: dict[str, tuple[str, ...]] = {
    "Make": ("generate", "image", "sequence", "post", "extend"),
    "Models, plans and records": ("models", "plan", "replay", "inspect", "history"),
    "Serve": ("serve", "ui", "desktop", "worker", "jobs", "batch", "batches", "keys"),
    "Train and measure": ("train", "train-lora", "data", "eval", "bench"),
    "Maintenance": ("records", "cache"),
}
COMMAND_ORDER = tuple(name for names in PANELS.values() for name in names)


class NewcomerOrder(TyperGroup):
    """Lists the commands in :data:`COMMAND_ORDER` (one not there after those, as registered); plain help display."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)

    def list_commands(self, ctx) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    name="t2v",
    cls=NewcomerOrder,
    help="Text to video with diffusion models: generate, replay and inspect reproducible clips.",
    epilog="A first video, offline in seconds: t2v generate \"a red circle moving right\" --model t2v-shapes -o "
           "circle.mp4. The models: t2v models list. Any command's options: t2v COMMAND --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(batches_app, name="batches")
app.add_typer(records_app, name="records")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.command("serve")(serve)
app.command("batch")(batch)
app.command("worker")(worker)
app.command("post")(post)
app.command("history")(history)
app.command("ui")(ui)
app.command("desktop")(desktop)


def _version(value: bool) -> None:
    if value:
        out.print(f"t2v {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    quiet_third_party()


@app.command()
@with_request_options(GenerationRequest, "video", post=True, extras=True)
def generate(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What the video should show."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (clip.mp4), stem or folder. Default: "
                                          "./outputs/<time>-<slug>."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024, help="CPU threads torch uses "
                                          "(default: torch's, the physical cores).", envvar="T2V_THREADS"),
    server: Optional[str] = SERVER,
    key: Optional[str] = KEY,
    as_json: bool = JSON_OUTPUT,
    overwrite: bool = OVERWRITE,
    stream: bool = STREAM,
    fields: dict = None,
) -> None:
    """Generate a video from PROMPT; writes the files and a JSON record beside them."""
    with cli_errors():
        request = video_request(prompt, fields, output)
        refuse_existing(request, output, overwrite=overwrite)
        refuse_remote_stream(stream, server)
        if server:
            return run_remote(ctx, request, server=server, key=key, output=output, quiet=quiet, threads=threads,
                              as_json=as_json)
        if threads is not None:  # else torch's own default: the physical cores
            set_threads(threads)
        with stdout_kept_for_json(as_json):
            result = run_with_progress(request, output=output, quiet=quiet, stream=stream)
        report(result, quiet=quiet, as_json=as_json)


EXTEND_FIELDS = ("model", "negative_prompt", "num_frames", "num_inference_steps", "guidance_scale", "fps", "seed",
                 "width", "height", "scheduler", "formats", "crf", "device", "dtype", "memory", "seconds",
                 "prompt_schedule", "overlap", "continue_strength")


@app.command()
@with_request_options(GenerationRequest, "video", post=True, extras=True, only=EXTEND_FIELDS)
def extend(
    ctx: typer.Context,
    clip: Path = typer.Argument(..., help="The clip to continue (mp4, webm or gif)."),
    prompt: str = typer.Argument(..., help="What the continuation should show."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (long.mp4), stem or folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    server: Optional[str] = SERVER,
    key: Optional[str] = KEY,
    as_json: bool = JSON_OUTPUT,
    overwrite: bool = OVERWRITE,
    stream: bool = STREAM,
    fields: dict = None,
) -> None:
    """Continue CLIP with PROMPT for --seconds more; writes the clip and its continuation as one video.

    The continuation is made in segments of the model's length, each from the end of the last (image-to-video
    from its last frame, or video-to-video of the overlap), the seams cross-faded; a diffusion-forcing model
    (SkyReels-V2 DF) continues the clip's last --overlap-history frames in one run instead. Size and fps default
    to the clip's."""
    with cli_errors():
        fps, width, height = clip_defaults(clip, fps=fields.get("fps"), width=fields.get("width"),
                                           height=fields.get("height"))
        given = {k: v for k, v in (("fps", fps), ("width", width), ("height", height)) if v is not None}
        request = video_request(prompt, {**fields, **given, "extend": str(clip)}, output)
        refuse_existing(request, output, overwrite=overwrite)
        refuse_remote_stream(stream, server)
        if server:  # the clip is uploaded; the server makes the continuation
            return run_remote(ctx, request, server=server, key=key, output=output, quiet=quiet, as_json=as_json)
        with stdout_kept_for_json(as_json):
            result = run_with_progress(request, output=output, quiet=quiet, stream=stream)
        report(result, quiet=quiet, as_json=as_json)


@app.command("plan")
@with_request_options(GenerationRequest, "video", post=True, extras=True)
def plan(
    prompt: str = typer.Argument(..., help="What the video should show."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Taken as generate takes it (the formats it "
                                          "implies); nothing is written."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Taken as generate takes it."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024, help="CPU threads torch uses "
                                          "(default: torch's, the physical cores).", envvar="T2V_THREADS"),
    fields: dict = None,
) -> None:
    """Predict peak memory and time per step for a request (the same request options as generate); loads no
    weights."""
    with cli_errors():
        if threads is not None:  # the times depend on it, as generate's run does
            set_threads(threads)
        show_plan(video_request(prompt, fields, output))


def _load_record(path: Path) -> dict:
    if not path.exists():
        raise InvalidRequest(f"{path} does not exist", field="record")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidRequest(f"{path} is not a readable JSON record: {e}", field="record") from None
    return _embedded(path)


def _embedded(path: Path) -> dict:
    """The record embedded in a file t2v wrote; a file that is not one (damaged, another program's) is the
    user's input to fix: InvalidRequest (exit 2)."""
    from t2v.export import read_embedded  # deferred: imports numpy

    try:
        return read_embedded(path)
    except ExportError as e:
        raise InvalidRequest(str(e), field="file") from None


@app.command()
def replay(
    record: Path = typer.Argument(..., help="A JSON record, or a video with an embedded record."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write (default: ./outputs/...)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the recorded device."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Override the recorded dtype."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Override the recorded model (e.g. a local copy)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the frames (or the sound) differ from the record."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; the verdict only."),
) -> None:
    """Regenerate a video (or image sequence) from its record and say whether the frames are identical."""
    with cli_errors():
        old = _load_record(record)
        fields = request_fields(old)
        fields.update({k: v for k, v in (("device", device), ("dtype", dtype), ("model", model)) if v})
        if not model:
            kept = version_for_record(old)
            if kept:  # made by weights the shipped model has since replaced: those, kept under their own id
                fields["model"] = kept
                if not quiet:
                    out.print(f"made with {escape(kept)} (its model_hash): replaying with it", highlight=False)
        if old.get("post_history"):  # made by `t2v post`: the original, then every post step again
            if not replay_post_chain(old, fields, output=output, quiet=quiet, run=run_with_progress) and strict:
                raise typer.Exit(1)
            return
        result = run_with_progress(request_from_fields({**fields, "mode": old.get("mode", "video")}), output=output, quiet=quiet)
        if not quiet:
            print_summary(result)
        same = result.record["frames_sha256"] == old.get("frames_sha256")
        if "postprocess" in old:  # and the post-processed frames: every step made again
            same = same and result.record.get("postprocess", {}).get("frames_sha256") == old["postprocess"].get(
                "frames_sha256")
        diffs = environment_differences(old, result.record)
        heard = (old.get("audio") or {}).get("sha256")  # the sound the model made, where it made one
        same_sound = not heard or (result.record.get("audio") or {}).get("sha256") == heard
        if same and same_sound:
            sound = " and sound" if heard else ""
            out.print(f"[bold green]identical frames{sound}[/] to the record (sha256 {old['frames_sha256'][:16]}…)",
                      highlight=False)
        else:
            why = "; ".join(diffs) if diffs else "same device, dtype, model and versions"
            what = "frames differ" if not same else "sound differs (the frames are identical)"
            out.print(f"[bold yellow]{what}[/] from the record ({why})", highlight=False)
            if strict:
                raise typer.Exit(1)


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="An MP4, WebM, GIF, PNG (or frames folder) written by t2v."),
) -> None:
    """Print the record embedded in a file t2v wrote."""
    with cli_errors():
        if not file.exists():
            raise InvalidRequest(f"{file} does not exist", field="file")
        out.print_json(json.dumps(_embedded(file)))


def main() -> None:
    """Run the ``t2v`` command line on ``sys.argv`` (ends with SystemExit, as a Click program does). A command
    whose extra is not installed exits 2 with the ``pip install`` to run."""
    try:
        app(args=spread_schedule(sys.argv[1:]), prog_name="t2v")
    except Exception as e:
        hint = missing_extra(e)
        if hint is None or os.environ.get("T2V_DEBUG"):
            raise
        fail(hint, 2)
        raise SystemExit(2) from None


def entry() -> None:
    """The ``t2v`` program (and ``python -m t2v``): :func:`main`, then the process ends without tearing the
    interpreter down (:func:`quick_exit`)."""
    one_shot()  # a run's loading goes without the garbage collector's passes (t2v.cli.startup)
    try:
        main()
    except SystemExit as e:
        quick_exit(e.code)
    quick_exit(0)


def quick_exit(code) -> None:
    """Leave with ``code`` once everything is written, skipping the interpreter's teardown: destroying torch's,
    diffusers' and transformers' thousands of modules and objects one by one takes about 0.7 s of every run
    (measured: a process that imports them exits in 4.26 s with ``os._exit`` against 4.98 s without), and the
    memory goes back to the OS either way. Output is flushed and logging shut down first. A normal exit is kept
    where it matters: another thread still running (a server's), a tracer or coverage watching."""
    code = 0 if code is None else code if isinstance(code, int) else 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others or sys.gettrace() is not None or "coverage" in sys.modules:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(code)


__all__ = ["app", "main", "entry", "fail"]


app.command("image")(image)
app.command("sequence")(sequence)
app.command("train")(train)
app.command("train-lora")(train_lora)
app.command("bench")(bench)


def help_text(doc: str | None) -> str | None:
    """A docstring as help text: each paragraph's lines joined (Rich's help keeps a docstring's line breaks, so a
    wrapped sentence would break mid-line), and ``[...]`` kept as text, not read as Rich markup."""
    if not doc:
        return doc
    return "\n\n".join(escape(" ".join(line.strip() for line in paragraph.splitlines()))
                        for paragraph in cleandoc(doc).split("\n\n"))


def arrange(typer_app: typer.Typer) -> None:
    """Put every top-level command under its heading of :data:`PANELS`, and give every command (the groups'
    too) its docstring as :func:`help_text`. Run once, after the last command is registered."""
    panel_of = {name: panel for panel, names in PANELS.items() for name in names}
    for info in typer_app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        info.rich_help_panel = info.rich_help_panel or panel_of.get(name)
        info.help = info.help or help_text(info.callback.__doc__)
    for group in typer_app.registered_groups:
        group.rich_help_panel = group.rich_help_panel or panel_of.get(group.name)
        for info in group.typer_instance.registered_commands:
            info.help = info.help or help_text(info.callback.__doc__)


arrange(app)  # last: after every registration above
