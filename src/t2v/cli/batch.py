"""``t2v batch FILE.jsonl``: queue one job a line under one batch id (a server's, with ``--server``, else this
machine's database, where ``t2v serve`` or ``t2v worker`` runs them); ``t2v batches show|cancel|pause|resume``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from t2v.cli.common import cli_errors, err, out
from t2v.cli.service import KEY, SERVER, local_service
from t2v.errors import InvalidRequest

batches_app = typer.Typer(help="Batches of jobs: show their counts; cancel, pause or resume them as a whole.",
                          no_args_is_help=True)


def read_lines(path: Path) -> list[Any]:
    """The file's JSON lines (blank lines skipped); InvalidRequest naming the first line that is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"file: cannot read {path} ({getattr(e, 'strerror', None) or e})", field="file") from None
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except ValueError as e:
                raise InvalidRequest(f"line {n}: not JSON ({e.msg})", field="file") from None
    if not items:
        raise InvalidRequest(f"file: {path} has no requests (one JSON object a line)", field="file")
    return items


def show(batch: dict[str, Any], invalid: list[dict[str, Any]] | None = None) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in batch["counts"].items() if n)
    out.print(f"batch {batch['id']}: {batch['total']} jobs ({counts or 'none'})", highlight=False)
    for p in invalid or []:
        err.print(f"left out line {p['line']}: {p['message']}", highlight=False)


def batch(file: Path = typer.Argument(..., help="JSON Lines: one request a line, as POST /v1/videos takes it."),
          partial: bool = typer.Option(False, "--partial", help="Queue the valid lines and list the others "
                                       "(default: nothing is queued when any line is invalid)."),
          priority: int = typer.Option(0, "--priority", min=-100, max=100, help="The jobs' priority, -100 to 100."),
          idempotency_key: Optional[str] = typer.Option(None, "--idempotency-key", help="The same key again "
                                                        "returns the same batch instead of queueing it twice."),
          as_json: bool = typer.Option(False, "--json", help="The batch as JSON."),
          server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Queue a batch of jobs from a JSON Lines file, under one id."""
    with cli_errors():
        items = read_lines(file)
        if server:
            from t2v.client import Client  # deferred: imports httpx

            with Client(server, key) as client:
                data = client.submit_batch(items, priority=priority, idempotency_key=idempotency_key,
                                           partial=partial).model_dump()
            invalid = data.pop("invalid", [])
        else:  # each line checked as a submit checks it
            result = local_service().batches.submit_batch(items, priority=priority, idempotency_key=idempotency_key,
                                                  partial=partial)
            data, invalid = result["batch"], result["invalid"]
            data = {**data, "created_at": data["created_at"].isoformat()}
        if as_json:
            return out.print_json(json.dumps({**data, "invalid": invalid}))
        show(data, invalid)


def _control(batch_id: str, action: str | None, server: Optional[str], key: Optional[str]) -> None:
    with cli_errors():
        if server:
            from t2v.client import Client  # deferred: imports httpx

            with Client(server, key) as client:
                data = (client.control_batch(batch_id, action) if action else client.batch(batch_id)).model_dump()
        else:
            svc = local_service()
            data = svc.batches.control_batch(batch_id, action) if action else svc.batches.get_batch(batch_id)
        show(data)


@batches_app.command("show")
def batches_show(batch_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """A batch's jobs by state."""
    _control(batch_id, None, server, key)


@batches_app.command("cancel")
def batches_cancel(batch_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Cancel every unfinished job of the batch."""
    _control(batch_id, "cancel", server, key)


@batches_app.command("pause")
def batches_pause(batch_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Pause every queued or running job of the batch."""
    _control(batch_id, "pause", server, key)


@batches_app.command("resume")
def batches_resume(batch_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Resume the batch's paused jobs."""
    _control(batch_id, "resume", server, key)
