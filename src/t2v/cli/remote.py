"""``t2v generate --server URL``: the same request made by a running t2v server, whose model is already loaded.

The request is built and checked here from the same flags (bad input exits 2 before anything is sent), sent
through :class:`t2v.client.Client` (an ``--image``, ``--video`` or clip to extend is uploaded), followed with the
same progress bar, and its files and record are fetched to where ``-o`` says, each whole or not at all. This
process imports neither torch nor diffusers and loads nothing: with a warm server a first video takes about
a second and a half of its own plus the server's work (docs/speed.md). Ctrl-C cancels the job on the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.markup import escape

from t2v.cli.common import out, print_record
from t2v.errors import Cancelled, InvalidRequest, T2VError
from t2v.requests import FILE_FIELDS
from t2v.cli.watch import connected, follow

# Flags the server decides for itself (its T2V_* settings), with the values that leave them to it.
SERVER_SIDE = {"device": ("auto", "T2V_DEVICE"), "dtype": ("auto", "T2V_DTYPE"), "memory": ("auto", "T2V_MEMORY"),
               "attention": ("auto", "T2V_ATTENTION"), "weights": ("auto", "T2V_WEIGHTS"),
               "text_encoder_weights": ("auto", "T2V_TEXT_ENCODER_WEIGHTS"), "compile": (False, "T2V_COMPILE")}
# Files a request names are uploaded from here; the job gets their asset ids (image: sent with the request)
LOCAL_FILES = FILE_FIELDS
NOT_SENT = {"mode", "prompt", *SERVER_SIDE, *LOCAL_FILES}
EXTENSIONS = {"mp4": ".mp4", "webm": ".webm", "gif": ".gif"}


def refuse_server_side(request, *, threads: int | None, ignore: set[str] = frozenset()) -> None:
    """Refuse flags a server decides itself, naming the setting it uses instead (not those in ``ignore``: this
    machine's own settings, from its environment)."""
    for name, (default, setting) in SERVER_SIDE.items():
        if name not in ignore and getattr(request, name) != default:
            flag = "--compile" if name == "compile" else f"--{name.replace('_', '-')} {getattr(request, name)}"
            raise InvalidRequest(f"{name}: {flag} is the server's to choose ({setting} where it runs); leave it out "
                                 f"with --server, or run without --server", field=name)
    if threads is not None and "threads" not in ignore:
        raise InvalidRequest("threads: --threads is the server's to choose (T2V_THREADS where it runs); leave it out "
                             "with --server", field="threads")
    if "png" in request.formats:
        raise InvalidRequest("formats: png frames stay on the server (a folder, not served over HTTP); nearest "
                             "valid: --format mp4, webm or gif", field="formats")


def generate_remote(request, *, server: str, key: str | None, output, quiet: bool, threads: int | None = None,
                    ignore: set[str] = frozenset(), summary: bool | None = None) -> dict:
    """Run ``request`` (a :class:`t2v.requests.GenerationRequest`) on the t2v server at ``server``; write its files
    and ``.json`` record at ``output`` as a local run does, and return the record. The progress is drawn unless
    ``quiet``; the summary printed when ``summary`` (default: unless ``quiet``)."""
    from t2v.client import Client  # deferred: imports httpx
    from t2v.export.outputs import check_outputs, output_stem  # deferred: imports numpy

    refuse_server_side(request, threads=threads, ignore=ignore)
    files = local_files(request)
    for name, path in files:  # uploaded from here: a missing file is bad input, before anything is sent
        if name != "image" and not Path(path).expanduser().is_file():
            raise InvalidRequest(f"{name}: {path} does not exist or is not a file", field=name)
    stem, implied = output_stem(output, request.prompt)
    formats = [*([implied] if implied and implied not in request.formats else []), *request.formats]  # as a local run
    check_outputs(stem, formats, inputs=[path for _, path in files])  # before anything is sent
    fields = body_fields(request, ignore=ignore)
    fields["formats"] = formats
    job = None
    with connected(server), Client(server, api_key=key) as client:
        try:
            for name, path in files:
                if name == "reference_images":
                    fields.setdefault(name, []).append(client.upload(Path(path).expanduser()).id)
                elif name != "image":
                    fields[name] = client.upload(Path(path).expanduser()).id
            job = client.submit(request.prompt, image=request.image, **fields)
            job = follow(client, job.id, quiet=quiet)
        except KeyboardInterrupt:
            if job is None:
                raise Cancelled("interrupted before the job was queued on the server") from None
            try:
                client.cancel(job.id)
            except T2VError as e:
                raise Cancelled(f"interrupted; cancelling job {job.id} on the server failed ({e}): "
                                f"t2v jobs cancel {job.id} --server {server}") from None
            raise Cancelled(f"job {job.id} cancelled on the server") from None
        if job.status != "succeeded":
            raise T2VError(f"job {job.id} {job.status} on the server" + (f": {job.error}" if job.error else ""))
        written, sidecar, record = fetch_all(client, job.id, stem, formats)
    if not quiet if summary is None else summary:
        for path in written:
            out.print(f"[green]wrote[/] {escape(str(path))}  ({path.stat().st_size:,} bytes)", highlight=False)
        out.print(f"[green]wrote[/] {escape(str(sidecar))}", highlight=False)
        print_record(record, where=escape(f" on {server} (job {job.id})"))
    return record


def local_files(request) -> list[tuple[str, str]]:
    """(field, file) for each file of ``request`` that is uploaded (reference images: one pair each)."""
    out = []
    for name in LOCAL_FILES:
        value = getattr(request, name, None)
        out.extend((name, v) for v in (value if isinstance(value, tuple) else (value,)) if v)
    return out


def body_fields(request, *, ignore: set[str] = frozenset()) -> dict:
    """The request as POST /v1/videos takes it (a prompt schedule as "FRAME: prompt" lines); a model named only by
    this machine's environment (T2V_MODEL) is left to the server's default."""
    fields = request.model_dump(mode="json", exclude_none=True, exclude=NOT_SENT)
    if request.prompt_schedule:
        fields["prompt_schedule"] = [f"{frame}: {prompt}" for frame, prompt in request.prompt_schedule]
    if "model" in ignore:
        fields.pop("model", None)
    return fields


def fetch_all(client, job_id: str, stem: Path, formats: list[str]) -> tuple[list[Path], Path, dict]:
    """The job's files and record at ``stem``, all or nothing: each downloaded into a hidden ``.part`` beside its
    name (checked against the job's sha256), then all renamed; on any failure (or Ctrl-C) nothing is left."""
    from t2v.export.metadata import write_sidecar  # deferred: imports numpy

    stem.parent.mkdir(parents=True, exist_ok=True)
    record = client.metadata(job_id)
    paths = [stem.with_name(stem.name + EXTENSIONS[fmt]) for fmt in formats]
    parts = [p.with_name(f".{p.name}.part") for p in paths]
    sidecar = stem.with_name(stem.name + ".json")
    done: list[Path] = []
    try:
        for fmt, part in zip(formats, parts):
            part.unlink(missing_ok=True)
            client.download(job_id, part, format=fmt)
        for output in record.get("outputs") or []:  # the files as named here, not on the server
            if output.get("format") in formats:
                output["file"] = paths[formats.index(output["format"])].name
        for part, path in zip(parts, paths):
            os.replace(part, path)
            done.append(path)
        write_sidecar(record, sidecar)
    except BaseException:
        for path in (*parts, *done):
            path.unlink(missing_ok=True)
        raise
    return paths, sidecar, record
