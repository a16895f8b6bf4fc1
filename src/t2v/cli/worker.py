"""``t2v worker``: job workers without an API, over the same database and artifact store as ``t2v serve``
(beside API processes started with ``--no-workers``)."""

from __future__ import annotations

import signal
import threading
from typing import Optional

import typer

from t2v.cli.common import cli_errors, err
from t2v.cli.service import DEVICE, EXECUTOR, RAY_ADDRESS, WORKERS, check_jobs_device, service_settings


def worker(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model to keep warm (and the default of jobs "
                                        "that name none)."),
    workers: Optional[int] = WORKERS,
    executor: Optional[str] = EXECUTOR,
    ray_address: Optional[str] = RAY_ADDRESS,
    device: Optional[str] = DEVICE,
) -> None:
    """Run queued jobs until stopped (Ctrl-C or SIGTERM: a running job saves its checkpoint and is queued again)."""
    from t2v.service import build_services  # deferred: imports alembic, httpx, PIL

    with cli_errors():
        settings = service_settings(model, ray_address, device)
        check_jobs_device(settings, executor)
        service = build_services(settings, workers=workers, executor=executor)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        service.start()
        if model:
            service.warm(model)
        state = service.ready(detail=False)
        err.print(f"t2v worker: {state['workers']} {service.executor.kind} worker(s) on {settings.home}; "
                  "Ctrl-C stops", highlight=False)
        stop.wait()
        err.print("t2v worker: stopping (running jobs go back to the queue)", highlight=False)
        service.stop()
