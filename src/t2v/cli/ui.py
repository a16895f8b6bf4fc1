"""``t2v ui``: the web page for one person on this machine (same service, database and queue as ``t2v serve``)."""

from __future__ import annotations

from typing import Optional

import typer
from t2v.cli.service import run_server


def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind.", envvar="T2V_UI_HOST"),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port.", envvar="T2V_UI_PORT"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Default model of the form."),
    workers: int = typer.Option(1, "--workers", min=1, max=16, help="Jobs run at once (one per GPU)."),
) -> None:
    """Start the web UI (Gradio) with its job workers; the REST API is served beside it under /v1."""
    run_server(host, port, model, workers, ui_required=True,
               banner="t2v UI on http://{host}:{port}/ (REST API under /v1), data in {home}")
