"""``t2v generate --server URL``: the same request made by a running t2v server, whose model is already loaded.

The request is built and checked here from the same flags (bad input exits 2 before anything is sent), sent
through :class:`t2v.client.Client` (an ``--image``, ``--video`` or clip to extend is uploaded), followed with the
same progress bar, and its files and record are fetched to where ``-o`` says, each whole or not at all. This
process imports neither torch nor diffusers and loads nothing: with a warm server a first video takes about
a second and a half of its own plus the server's work (docs/speed.md). Ctrl-C cancels the job on the server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from t2v.cli.common import out, print_record
from t2v.errors import Cancelled, InvalidRequest, T2VError

# Flags the server decides for itself (its T2V_* settings), with the values that leave them to it.
SERVER_SIDE = {"device": ("auto", "T2V_DEVICE"), "dtype": ("auto", "T2V_DTYPE"), "memory": ("auto", "T2V_MEMORY"),
               "attention": ("auto", "T2V_ATTENTION"), "weights": ("auto", "T2V_WEIGHTS"),
               "compile": (False, "T2V_COMPILE")}
LOCAL_FILES = ("image", "video", "extend")  # uploaded; the job gets their asset ids
NOT_SENT = {"mode", "prompt", *SERVER_SIDE, *LOCAL_FILES}
EXTENSIONS = {"mp4": ".mp4", "webm": ".webm", "gif": ".gif"}


def refuse_server_side(request, *, threads: int | None, ignore: set[str] = frozenset()) -> None:
    """Refuse flags a server decides itself, naming the setting it uses instead (not those in ``ignore``: this
    machine's own settings, from its environment)."""
    for name, (default, setting) in SERVER_SIDE.items():
        if name not in ignore and getattr(request, name) != default:
            flag = "--compile" if name == "compile" else f"--{name} {getattr(request, name)}"
            raise InvalidRequest(f"{name}: {flag} is the server's to choose ({setting} where it runs); leave it out "
                                 f"with --server, or run without --server", field=name)
    if threads is not None and "threads" not in ignore:
        raise InvalidRequest("threads: --threads is the server's to choose (T2V_THREADS where it runs); leave it out "
                             "with --server", field="threads")
    if "png" in request.formats:
        raise InvalidRequest("formats: png frames stay on the server (a folder, not served over HTTP); nearest "
                             "valid: --format mp4, webm or gif", field="formats")


def generate_remote(request, *, server: str, key: str | None, output, quiet: bool, threads: int | None = None,
                    ignore: set[str] = frozenset()) -> None:
    """Run ``request`` (a :class:`t2v.request.GenerationRequest`) on the t2v server at ``server``; write its files
    and ``.json`` record at ``output`` as a local run does."""
    from t2v.cli.watch import connected, follow
    from t2v.client import Client
    from t2v.generation import check_outputs, output_stem

    refuse_server_side(request, threads=threads, ignore=ignore)
    stem, implied = output_stem(output, request.prompt)
    formats = [*([implied] if implied and implied not in request.formats else []), *request.formats]  # as a local run
    check_outputs(stem, formats)  # before anything is sent
    fields = request.model_dump(exclude_none=True, exclude=NOT_SENT)
    fields["formats"] = formats
    with connected(server), Client(server, api_key=key) as client:
        for name in ("video", "extend"):
            if getattr(request, name):
                fields[name] = client.upload(getattr(request, name)).id
        job = client.submit(request.prompt, image=request.image, **fields)
        try:
            job = follow(client, job.id, quiet=quiet)
        except KeyboardInterrupt:
            client.cancel(job.id)
            raise Cancelled(f"job {job.id} cancelled on the server") from None
        if job.status != "succeeded":
            raise T2VError(f"job {job.id} {job.status} on the server" + (f": {job.error}" if job.error else ""))
        stem.parent.mkdir(parents=True, exist_ok=True)
        written = [fetch(client, job.id, fmt, stem.with_name(stem.name + EXTENSIONS[fmt])) for fmt in formats]
        record = client.metadata(job.id)
        sidecar = stem.with_name(stem.name + ".json")
        replace_with(sidecar, (json.dumps(record, indent=2) + "\n").encode())
    if not quiet:
        for path in written:
            out.print(f"[green]wrote[/] {path}  ({path.stat().st_size:,} bytes)", highlight=False)
        out.print(f"[green]wrote[/] {sidecar}", highlight=False)
        print_record(record, where=f" on {server} (job {job.id})")


def fetch(client, job_id: str, fmt: str, path: Path) -> Path:
    """Download the job's ``fmt`` file to ``path``: into a hidden file beside it (checked against the job's
    sha256), then renamed, so ``path`` is never a partial file."""
    part = path.with_name(f".{path.name}.part")
    part.unlink(missing_ok=True)
    try:
        client.download(job_id, part, format=fmt)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def replace_with(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)
