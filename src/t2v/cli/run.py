"""What the commands that make something share: the request from a command's prompt and derived options, the run
with progress (or on a server), and the summary."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from t2v.cli.common import Interrupt, err, out, print_json_lines, print_record, stdout_kept_for_json
from t2v.errors import InvalidRequest
from t2v.requests import GenerationRequest, parse_formats
from t2v.families import get_family
from t2v.models.allowlist import is_cached
from t2v.models.download import is_offline, license_notice
from t2v.models.registry import lookup
from t2v.models.source import check_folder
from t2v.settings import get_settings
from t2v.cli.progress import GenerationProgress
from t2v.cli.remote import generate_remote

VIDEO_ENDINGS = (".mp4", ".webm", ".gif")


def video_request(prompt: str, fields: dict[str, Any], output: Path | None) -> GenerationRequest:
    """The video request of a command's PROMPT and options; with no --format, ``-o clip.gif`` writes a GIF. An
    input image is checked first (a missing, damaged or oversized one exits 2 before any model loads)."""
    from t2v.inputs import check_image  # deferred: imports numpy

    fields = dict(fields)
    if fields.get("image") is not None:
        check_image(Path(fields["image"]))
    if "formats" not in fields and output is not None and Path(output).suffix.lower() in VIDEO_ENDINGS:
        fields["formats"] = parse_formats(Path(output).suffix, ("mp4", "webm", "gif"))
    return GenerationRequest(prompt=prompt, **fields)


OVERWRITE = typer.Option(False, "--overwrite", help="Replace the files an earlier run wrote under the same -o name "
                         "(without it, such a name is refused, exit 2).")


def refuse_existing(request, output: Path | None, *, overwrite: bool) -> None:
    """An explicit ``-o`` whose files (a video, the ``.json`` record) already exist is refused (exit 2) unless
    ``overwrite``, before anything loads: a second run does not silently replace the first one's clip. A folder or
    no ``-o`` gets a fresh time-stamped name, so it never collides."""
    if output is None or overwrite:
        return
    from t2v.export.outputs import output_stem  # deferred: imports numpy
    from t2v.export.writers import EXTENSIONS  # deferred: imports numpy

    stem, implied = output_stem(output, getattr(request, "prompt", "video"))
    formats = dict.fromkeys((*([implied] if implied else []), *request.formats))
    names = [stem.name + EXTENSIONS[f] for f in formats if f != "png"] + [stem.name + ".json"]
    inputs = [v for v in request.model_dump().values() if isinstance(v, str) and v]
    refuse_taken([stem.with_name(name) for name in names], inputs=inputs)


def refuse_taken(paths, *, inputs=()) -> None:
    """The first of ``paths`` that is a file already, refused (InvalidRequest naming ``output``, exit 2): the
    check behind ``--overwrite``. A path that is one of the run's ``inputs`` passes here: the run refuses it
    as an input, with or without ``--overwrite``."""
    taken = [Path(p) for p in paths if Path(p).is_file()]
    given = {os.path.realpath(Path(v).expanduser()) for v in inputs if Path(v).expanduser().is_file()}
    if any(os.path.realpath(p) in given for p in taken):
        return
    if taken:
        raise InvalidRequest(f"output: {taken[0]} exists (from an earlier run); choose another -o name, or add "
                             f"--overwrite to replace it", field="output")


def licence_notice(model: str | None) -> None:
    """Print the licence notice of a registered model that is about to download (not yet in the cache)."""
    spec = lookup(model) if model else None
    settings = get_settings()
    if spec is None or not spec.license_notice or is_offline(settings):
        return
    if is_cached(spec.id, spec.revision, settings, partial(check_folder, families=get_family)):
        return
    err.print(f"[yellow]licence notice ({spec.id}, {spec.license}):[/] {license_notice(spec.id)}", highlight=False)


def run_with_progress(request, *, output, quiet: bool, stream: bool = False):
    from t2v.runner.modes import generate as run_request  # deferred: imports PIL, numpy

    licence_notice(request.model)
    with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=quiet) as progress:
        return run_request(request, on_progress=progress, should_cancel=interrupt, output=output,
                           settings=get_settings(), stream=stream or None)


def print_summary(result) -> None:
    for o in result.outputs:
        out.print(f"[green]wrote[/] {escape(str(o.path))}  ({o.bytes:,} bytes)", highlight=False)
    if result.sidecar:
        out.print(f"[green]wrote[/] {escape(str(result.sidecar))}", highlight=False)
    print_record(result.record)


def report(result, *, quiet: bool, as_json: bool) -> None:
    """What a finished run prints on stdout: its record as one line of JSON (``--json``), else the summary
    (nothing with ``--quiet``)."""
    if as_json:
        print_json_lines([result.record])
    elif not quiet:
        print_summary(result)


STREAM = typer.Option(False, "--stream", help="Write the .mp4 while the clip is made: each finished part (a long "
                      "video's segment, a diffusion-forcing window, a Helios or AnyFlow FAR chunk, a Wan-Animate "
                      "segment) is appended to a fragmented MP4 that plays from its first frames; the finished file "
                      "(record, post-processing, sound) replaces it at the end.")


def refuse_remote_stream(stream: bool, server: str | None) -> None:
    """``--stream`` is for local runs: a server streams every job (its content route serves the clip so far)."""
    if stream and server:
        raise InvalidRequest("stream: --server fetches the finished file; a server streams every job itself (GET "
                             "/v1/videos/ID/content while it runs): leave --stream out", field="stream")


SERVER = typer.Option(None, "--server", help="A running t2v server's URL: it makes the video (its model already "
                      "loaded) and the files come here.", envvar="T2V_SERVER")
KEY = typer.Option(None, "--key", help="API key for --server.", envvar="T2V_API_KEY")


def run_remote(ctx: typer.Context, request, *, server: str, key: str | None, output, quiet: bool,
               threads: int | None = None, as_json: bool = False) -> None:
    """``request`` made by the server at ``server``, its files fetched to ``output``; the summary, or the record
    as JSON (``as_json``), printed as a local run's."""
    # this machine's T2V_MODEL, T2V_DTYPE, ... settings are not the server's: only flags given count
    local = {name for name in ("model", "device", "dtype", "memory", "threads")
             if (source := ctx.get_parameter_source(name)) is not None and source.name == "ENVIRONMENT"}
    with stdout_kept_for_json(as_json):
        record = generate_remote(request, server=server, key=key, output=output, quiet=quiet, threads=threads,
                                 ignore=local, summary=not (quiet or as_json))
    if as_json:
        print_json_lines([record])
