"""``t2v serve``, ``t2v jobs``, ``t2v history`` and ``t2v keys``: front ends over the job service."""

from __future__ import annotations

import json
import os
from typing import Optional

import typer
from rich.table import Table

from t2v.cli.common import cli_errors, err, out
from t2v.settings import get_settings
from t2v.errors import InvalidRequest
from t2v.cli.watch import watch
from t2v.models.device import check_device_name, check_device_present, set_threads
from t2v.ui import mount_ui
from t2v.cli.records import history_records

jobs_app = typer.Typer(help="Jobs in the service's database: list, show, cancel, pause, resume, change, watch.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for `t2v serve`: create, list, rotate the webhook secret, revoke.",
                       no_args_is_help=True)
SERVER = typer.Option(None, "--server", help="A t2v server's URL: ask it (t2v.client) instead of the local database.",
                      envvar="T2V_SERVER")
KEY = typer.Option(None, "--key", help="API key for --server.", envvar="T2V_API_KEY")


def local_service():
    """The service over this machine's database, without workers (reads and admin: jobs run in `t2v serve` /
    `t2v worker`)."""
    from t2v.service import build_services  # deferred: imports alembic, httpx, PIL

    return build_services(no_workers=True)


EXECUTOR = typer.Option(None, "--executor", help="Where jobs run: threads (in this process) or ray (actors across a "
                        "Ray cluster; the ray extra). Default: T2V_EXECUTOR, else threads.")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="The Ray cluster for --executor ray (HOST:6379, ray://HOST:10001, "
                           "auto). Default: T2V_RAY_ADDRESS, else a private local cluster.")
UVICORN_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DEVICE = typer.Option(None, "--device", help="Where this process's jobs run: auto, cpu, cuda, cuda:N or mps. "
                      "A device this machine lacks refuses to start. Default: T2V_DEVICE, else auto.")
WORKERS = typer.Option(None, "--workers", min=1, max=256, help="Jobs run at once: threads (default 1, one per GPU), "
                       "or Ray actors (default one per GPU in the cluster).")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind.", envvar="T2V_HOST"),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port.", envvar="T2V_PORT"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Default model for jobs that name none."),
    workers: Optional[int] = WORKERS,
    executor: Optional[str] = EXECUTOR,
    ray_address: Optional[str] = RAY_ADDRESS,
    no_workers: bool = typer.Option(False, "--no-workers", help="Run no jobs here: only the API, queueing jobs in the "
                                    "database for workers elsewhere (`t2v worker`, or another server's Ray actors)."),
    ui: Optional[bool] = typer.Option(None, "--ui/--no-ui", help="Serve the web page at / (default, or T2V_UI=0 "
                                      "to turn it off); --no-ui serves only the REST API and never imports Gradio."),
    device: Optional[str] = DEVICE,
) -> None:
    """Start the REST API (FastAPI under uvicorn) with its job workers, and the web page at /."""
    run_server(host, port, model, workers, ui_required=False, executor=executor, ray_address=ray_address,
               no_workers=no_workers, ui=ui, device=device,
               banner="t2v serving on http://{host}:{port} ({page}docs at /docs), data in {home}")


def service_settings(model: str | None, ray_address: str | None, device: str | None = None):
    """The settings of a server or worker process, with ``--model``, ``--ray-address`` and ``--device`` applied."""
    overrides = {"default_model": model} if model else {}
    if ray_address:
        overrides["ray_address"] = ray_address
    if device:
        overrides["device"] = device
    settings = get_settings(**overrides)
    if settings.threads:  # T2V_THREADS, for every worker; else torch's default (the physical cores)
        set_threads(settings.threads)
    return settings


def check_jobs_device(settings, executor: str | None, no_workers: bool = False) -> None:
    """Refuse to start job workers in this process on a device (``--device`` / T2V_DEVICE) this machine lacks:
    every job would fail, or run somewhere it was not asked to. Jobs on Ray actors are placed by Ray."""
    if no_workers or (executor or settings.executor) != "threads" or settings.device == "auto":
        return
    try:
        check_device_present(check_device_name(settings.device))
    except InvalidRequest as e:
        raise InvalidRequest(f"refusing to start with --device / T2V_DEVICE {settings.device}: "
                             f"{str(e).removeprefix('device: ')}", field="device") from None


def run_server(host: str, port: int, model: str | None, workers: int | None, *, ui_required: bool, banner: str,
               executor: str | None = None, ray_address: str | None = None, no_workers: bool = False,
               ui: bool | None = None, device: str | None = None) -> None:
    """What `t2v serve` and `t2v ui` share: settings, service, key check, app with the page mounted, uvicorn.

    ``ui``: whether to mount the page (None: T2V_UI, on by default); off, Gradio is never imported."""
    import uvicorn

    from t2v.api import create_app  # deferred: imports fastapi
    from t2v.service import build_services  # deferred: imports alembic, httpx, PIL
    from t2v.service.netguard import is_loopback  # deferred: imports alembic, httpx, PIL

    with cli_errors():
        log_level = os.environ.get("T2V_UVICORN_LOG", "warning").lower()
        if log_level not in UVICORN_LEVELS:
            raise InvalidRequest(f"T2V_UVICORN_LOG: {log_level!r} is not a log level; use one of "
                                 f"{', '.join(UVICORN_LEVELS)} (default warning)", field="T2V_UVICORN_LOG")
        settings = service_settings(model, ray_address, device)
        check_jobs_device(settings, executor, no_workers)
        service = build_services(settings, workers=workers, executor=executor, no_workers=no_workers)
        if not is_loopback(host) and not service.access.has_keys():
            raise InvalidRequest(
                f"refusing to bind {host} without API keys: anyone on the network could run jobs. "
                "Create one with `t2v keys create --name NAME`, or bind 127.0.0.1", field="host")
        app = create_app(settings, service=service, loopback_hosts=is_loopback(host))
        with_ui = ui_required or (settings.ui if ui is None else ui)
        if with_ui:  # the page at /; the API keeps /v1, /docs, /healthz, /metrics
            app = mount_ui(app, service, required=ui_required)
        if model:
            service.warm(model)  # the model loads once, before the first job asks for it
        err.print(banner.format(host=host, port=port, home=settings.home, page="web UI at /, " if with_ui else ""),
                  highlight=False)
        uvicorn.run(app, host=host, port=port, log_level=log_level)


def _job_row(job) -> list[str]:
    req = job.request or {}
    prog = f"{job.step}/{job.total}" if job.total else "-"
    return [job.id, job.status, prog, str(req.get("seed", "")), (req.get("prompt") or "")[:50],
            job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else ""]


def _client_row(job) -> list[str]:
    """A :class:`t2v.client.Job` as a table row (the columns of :func:`_job_row`)."""
    req, p = job.request, job.progress
    return [job.id, job.status, f"{p.step}/{p.total}" if p.total else "-", str(req.get("seed", "")),
            (req.get("prompt") or "")[:50], (job.created_at or "")[:19].replace("T", " ")]


def _print_rows(rows: list[list[str]], title: str) -> None:
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for col in ("status", "steps", "seed", "prompt", "created (UTC)"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _print_jobs(jobs, title: str) -> None:
    _print_rows([_job_row(j) for j in jobs], title)


def _remote_jobs(server: str, key: Optional[str], title: str, as_json: bool, **list_kwargs) -> None:
    from t2v.client import Client  # deferred: imports httpx

    with Client(server, key) as client:
        jobs = client.list(**list_kwargs).items
    if as_json:
        out.print_json(json.dumps([j.model_dump(mode="json") for j in jobs]))
    else:
        _print_rows([_client_row(j) for j in jobs], title)


@jobs_app.command("list")
def jobs_list(
    status: Optional[str] = typer.Option(None, "--status", help="queued, running, succeeded, failed, cancelled"),
    limit: int = typer.Option(20, "--limit", help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON on stdout."),
    server: Optional[str] = SERVER,
    key: Optional[str] = KEY,
) -> None:
    """Jobs, newest first."""
    from t2v.service.views import job_to_dict  # deferred: imports alembic, httpx, PIL

    with cli_errors():
        if server:
            return _remote_jobs(server, key, "jobs", as_json, status=status, limit=limit)
        svc = local_service()
        jobs = svc.list(status=status, limit=limit)
        if as_json:
            out.print_json(json.dumps([job_to_dict(svc, j) for j in jobs]))
        else:
            _print_jobs(jobs, "jobs")


@jobs_app.command("show")
def jobs_show(job_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """One job as JSON."""
    from t2v.service.views import job_to_dict  # deferred: imports alembic, httpx, PIL

    with cli_errors():
        if server:
            from t2v.client import Client  # deferred: imports httpx

            with Client(server, key) as client:
                return out.print_json(client.get(job_id).model_dump_json())
        svc = local_service()
        out.print_json(json.dumps(job_to_dict(svc, svc.get(job_id))))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, purge: bool = typer.Option(False, "--purge", help="Also remove its files."),
                server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Cancel a queued or running job (a running one stops between denoising steps)."""
    with cli_errors():
        if server:
            from t2v.client import Client  # deferred: imports httpx

            with Client(server, key) as client:
                job = client.cancel(job_id, purge=purge)
        else:
            job = local_service().cancel(job_id, purge=purge)
        state = "cancellation requested" if job.status == "running" else job.status
        out.print(f"{job.id}: {state}", highlight=False)


@jobs_app.command("pause")
def jobs_pause(job_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Pause a queued job (skipped until resumed) or a running one (it stops at its next step, keeps its
    checkpoint and frees its worker)."""
    _steer("pause", job_id, server, key)


@jobs_app.command("resume")
def jobs_resume(job_id: str, server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Resume a paused job: back in the queue, from its checkpoint."""
    _steer("resume", job_id, server, key)


@jobs_app.command("change")
def jobs_change(job_id: str,
                priority: Optional[int] = typer.Option(None, "--priority", help="-100 to 100; higher starts first."),
                sets: list[str] = typer.Option([], "--set", help="FIELD=VALUE of the request, checked as at submit "
                                               "(VALUE as JSON where it parses, e.g. --set num_inference_steps=30)."),
                server: Optional[str] = SERVER, key: Optional[str] = KEY) -> None:
    """Change a queued job: its priority and any request field."""
    with cli_errors():
        fields = dict(parse_set(item) for item in sets)
        if priority is None and not fields:
            raise InvalidRequest("give --priority N and/or --set FIELD=VALUE", field="set")
        _steer("change", job_id, server, key, priority=priority, **fields)


def parse_set(item: str) -> tuple[str, object]:
    """``FIELD=VALUE`` as (field, the value read as JSON, else the text)."""
    name, eq, text = item.partition("=")
    if not eq or not name.strip():
        raise InvalidRequest(f"--set: {item!r} is not FIELD=VALUE (e.g. --set prompt=\"a red fox\")", field="set")
    try:
        return name.strip(), json.loads(text)
    except ValueError:
        return name.strip(), text


def _steer(action: str, job_id: str, server: Optional[str], key: Optional[str], **kw) -> None:
    """pause / resume / change over a server's API, or on this machine's database."""
    with cli_errors():
        if server:
            from t2v.client import Client  # deferred: imports httpx

            with Client(server, key) as client:
                job = getattr(client, f"{action}_job")(job_id, **kw)
                status, priority = job.status, job.priority
        else:
            svc = local_service()
            if action == "change":
                priority = kw.pop("priority")
                row = svc.steering.change(job_id, kw, priority=priority)
            else:
                row = getattr(svc.steering, action)(job_id)
            from t2v.service.views import job_to_dict  # deferred: imports alembic, httpx, PIL

            shown = job_to_dict(svc, row)
            status, priority = shown["status"], shown["priority"]
        if action == "pause" and status == "running":
            status = "pause requested (it stops at its next step)"
        out.print(f"{job_id}: {status}, priority {priority}", highlight=False)


@jobs_app.command("watch")
def jobs_watch(
    job_id: str,
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="The t2v server.", envvar="T2V_URL"),
    key: Optional[str] = typer.Option(None, "--key", help="API key.", envvar="T2V_API_KEY"),
) -> None:
    """Follow a job's progress from the server's event stream until it ends."""
    with cli_errors():
        final = watch(url, job_id, key)
        raise typer.Exit(0 if final == "succeeded" else 1)


def history(
    query: Optional[str] = typer.Argument(None, help="Only prompts containing this text."),
    limit: int = typer.Option(20, "--limit", help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON on stdout."),
    server: Optional[str] = SERVER,
    key: Optional[str] = KEY,
    source: Optional[str] = typer.Option(None, "--source", help="Records instead of jobs: sql (the job table) or "
                                         "mongodb (T2V_RECORDS_URL); both include failed and cancelled jobs."),
) -> None:
    """Past generations (succeeded jobs), newest first; with --source, the generation records."""
    from t2v.service.views import job_to_dict  # deferred: imports alembic, httpx, PIL

    with cli_errors():
        if source is not None:
            return history_records(source, query, limit, as_json, server, key)
        if server:
            return _remote_jobs(server, key, "history", as_json, status="succeeded", limit=limit, query=query)
        svc = local_service()
        jobs = svc.list(status="succeeded", limit=limit, query=query)
        if as_json:
            out.print_json(json.dumps([job_to_dict(svc, j) for j in jobs]))
        else:
            _print_jobs(jobs, "history")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Request rate limit, e.g. 30/minute."),
    max_queued: Optional[int] = typer.Option(None, "--max-queued", help="Most jobs this key may have queued."),
    max_cost: Optional[int] = typer.Option(None, "--max-cost", help="Largest frames x width x height x steps per "
                                           "request (e.g. 16x256x256x25 = 26214400); T2V_MAX_COST applies when lower."),
    max_running: Optional[int] = typer.Option(None, "--max-running", help="Most jobs of this key running at once, "
                                              "across every worker and server process (the rest wait queued)."),
    max_priority: Optional[int] = typer.Option(None, "--max-priority", help="Highest priority this key's jobs may "
                                               "have, -100 to 100 (default: T2V_MAX_PRIORITY, 10)."),
    as_json: bool = typer.Option(False, "--json", help="Print {id, key, webhook_secret} as JSON on stdout."),
) -> None:
    """Create a key and its webhook signing secret. Both are shown once: only the key's hash is stored, and the
    secret is not shown again (rotate it to get a new one). stdout is the key alone (or JSON with --json)."""
    with cli_errors():
        row, plaintext = local_service().access.create_key(name, rate=rate, max_queued=max_queued, max_cost=max_cost,
                                                           max_running=max_running, max_priority=max_priority)
        if as_json:
            out.print_json(json.dumps({"id": row.id, "key": plaintext, "webhook_secret": row.webhook_secret}))
            return
        err.print(f"created key {row.id} ({row.name}); its webhook signing secret (verify webhook-signature with it; "
                  f"not shown again): {row.webhook_secret}", highlight=False, soft_wrap=True)
        err.print("the key; store it now, it is not shown again:", highlight=False)
        out.print(plaintext, highlight=False)


@keys_app.command("rotate-webhook-secret")
def keys_rotate_webhook_secret(
    key_id: str,
    overlap: str = typer.Option("24h", "--overlap", help="How long the old secret keeps signing beside the new one: "
                                "seconds, or a number with s, m, h or d (0 to 30d)."),
) -> None:
    """Give a key a new webhook signing secret, printed once on stdout. For the overlap, each webhook carries two
    signatures (old and new secret) so a receiver can switch to the new secret without missing one."""
    with cli_errors():
        out.print(local_service().access.rotate_webhook_secret(key_id, parse_span(overlap)), highlight=False)


def parse_span(text: str) -> float:
    """``"90"`` -> 90.0, ``"30m"`` -> 1800.0, ``"24h"``, ``"2d"``; InvalidRequest otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise InvalidRequest(f"--overlap {text!r} is not a duration; e.g. 24h, 30m, 3600 or 0", field="overlap") from None


@keys_app.command("list")
def keys_list() -> None:
    """Keys with their limits (never the secret)."""
    with cli_errors():
        table = Table(title="API keys")
        table.add_column("id", no_wrap=True)  # what `keys revoke` takes: never cut
        for col in ("name", "limits", "created", "revoked"):
            table.add_column(col, overflow="fold")
        for k in local_service().access.list_keys():
            limits = [f"{label} {value}" for label, value in (("rate", k.rate_limit), ("queued", k.max_queued),
                      ("running", k.max_running), ("cost", k.max_cost)) if value]
            limits += [f"priority up to {k.max_priority}"] if k.max_priority is not None else []
            table.add_row(k.id, f"{k.name} ({k.prefix}…)", ", ".join(limits) or "-", k.created_at.strftime("%Y-%m-%d"),
                          k.revoked_at.strftime("%Y-%m-%d") if k.revoked_at else "")
        out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: requests with it get 401 from now on, its open event streams end, and its queued and
    running jobs are cancelled."""
    with cli_errors():
        service = local_service()
        if not service.access.revoke_key(key_id):
            raise InvalidRequest(f"no active key with id {key_id}", field="key_id")
        removed = service.assets.purge_key_assets(key_id)
        out.print(f"revoked {key_id}; cancelled its unfinished jobs; removed {removed} uploaded image(s)",
                  highlight=False)
