"""``t2v ui``: the web page for one person on this machine (same service, database and queue as ``t2v serve``)."""

from __future__ import annotations

import os
from typing import Optional

import typer

from t2v.cli.common import cli_errors, err


def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind.", envvar="T2V_UI_HOST"),
    port: int = typer.Option(7860, "--port", help="TCP port.", envvar="T2V_UI_PORT"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Default model of the form."),
    workers: int = typer.Option(1, "--workers", min=1, max=16, help="Jobs run at once (one per GPU)."),
) -> None:
    """Start the web UI (Gradio) with its job workers; the REST API is served beside it under /v1."""
    import uvicorn

    from t2v.api import create_app
    from t2v.cli.service import _is_loopback
    from t2v.errors import InvalidRequest
    from t2v.settings import get_settings

    with cli_errors():
        from t2v.service import JobService
        from t2v.ui import mount_ui

        settings = get_settings(**({"default_model": model} if model else {}))
        service = JobService(settings, workers=workers)
        if not _is_loopback(host) and not service.repo.list_keys():
            raise InvalidRequest(
                f"refusing to bind {host} without API keys: anyone on the network could run jobs. "
                "Create one with `t2v keys create --name NAME`, or bind 127.0.0.1", field="host")
        app = mount_ui(create_app(settings, service=service), service, required=True)
        if model and hasattr(service, "warm"):
            service.warm(model)  # the model loads once, before the first job asks for it

        err.print(f"t2v UI on http://{host}:{port}/ (REST API under /v1), data in {settings.home}", highlight=False)
        uvicorn.run(app, host=host, port=port, log_level=os.environ.get("T2V_UVICORN_LOG", "warning"))
