"""``t2v records export`` and ``t2v history --source mongodb``: the generation records in MongoDB."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table

from t2v.cli.common import cli_errors, err, out

records_app = typer.Typer(help="Generation records in MongoDB (T2V_RECORDS_URL): export the history.",
                          no_args_is_help=True)


@records_app.command("export")
def export(
    to: Optional[str] = typer.Option(None, "--to", help="mongodb:// or mongodb+srv:// URL (default: T2V_RECORDS_URL)."),
) -> None:
    """Send every finished job's record to MongoDB (backfill). Safe to repeat: each job is stored once."""
    from t2v.service import build_services  # deferred: imports alembic, httpx, PIL
    from t2v.service.records import export_records  # deferred: imports alembic, httpx, PIL

    with cli_errors():
        service = build_services(no_workers=True)
        n = export_records(service, to)
        err.print(f"exported {n} record(s) to {service.settings.records_collection} "
                  f"in {service.settings.records_db}", highlight=False)


def print_records(records: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(records, default=str))
        return
    table = Table(title="records")
    for col in ("job", "status", "model", "seed", "prompt", "created"):
        table.add_column(col)
    for r in records:
        created = r.get("created_at")
        created = created.strftime("%Y-%m-%d %H:%M:%S") if hasattr(created, "strftime") else str(created or "")[:19]
        table.add_row(str(r.get("job_id")), str(r.get("status")), str(r.get("model") or ""), str(r.get("seed", "")),
                      str(r.get("prompt") or "")[:50], created)
    out.print(table)


def history_records(source: str, query: str | None, limit: int, as_json: bool, server: str | None,
                    key: str | None) -> None:
    """``t2v history --source ...``: records from the local service, or from a server's /v1/records."""
    if server:
        from t2v.client import Client  # deferred: imports httpx

        with Client(server, api_key=key) as client:
            records = client.records(query, source=source, limit=limit)
    else:
        from t2v.service import build_services  # deferred: imports alembic, httpx, PIL
        from t2v.service.records import search_records  # deferred: imports alembic, httpx, PIL

        records = search_records(build_services(no_workers=True), source=source, query=query, limit=limit)
    print_records(records, as_json)


__all__ = ["records_app", "history_records", "print_records"]
