"""Follow a job's Server-Sent Events (through :class:`t2v.client.Client`) and draw a Rich progress bar."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from t2v.cli.common import err, out
from t2v.cli.progress import TimeLeftColumn, until
from t2v.errors import InvalidRequest, T2VError


def watch(url: str, job_id: str, key: str | None) -> str:
    """Draw the job's progress until it ends; print ``"{job_id}: {status}"`` and return the final status."""
    from t2v.client import Client  # deferred: imports httpx

    with connected(url):
        with Client(url, api_key=key) as client:
            job = follow(client, job_id)
    out.print(f"{job_id}: {job.status}" + (f" ({job.error})" if job.error else ""), highlight=False)
    return job.status


@contextmanager
def connected(url: str) -> Iterator[None]:
    """The client's refusals as the CLI's: a refused key names --key, an unreachable server its URL."""
    from urllib.parse import urlsplit

    from t2v.client.errors import ConnectionFailed, Unauthorized  # deferred: imports httpx

    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"--server: {url!r} is not a server URL; give one like http://127.0.0.1:8000",
                             field="server")
    try:
        yield
    except Unauthorized as e:
        raise InvalidRequest(f"the server refused the key (check --key): {e}", field="key") from None
    except ConnectionFailed as e:
        raise T2VError(f"cannot reach the t2v server at {url}: {e}") from None


def follow(client, job_id: str, *, quiet: bool = False):
    """Draw the job's progress from its event stream until it ends (nothing with ``quiet``); the final job."""
    # First the job itself: a wrong id, key or address fails here at once, not after the stream's
    # reconnects; and the bar starts from the job's present state.
    job = client.get(job_id)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("eta"), TimeLeftColumn(), console=err, disable=quiet) as progress:
        task = progress.add_task(_label(job), total=None)
        for event in client.events(job_id):
            if event.job is None:  # an ``error`` event: the job was deleted, or the stream's slot was lost
                if event.final:
                    raise T2VError(f"{job_id}: {event.data.get('detail') or event.event}")
                continue
            job = event.job
            progress.update(task, description=_label(job), completed=job.progress.step,
                            total=job.progress.total or None, until=until(job.progress.eta_s))
    # a stream resumed past the end ends without the final event: the job as it is now
    return job if job.finished else client.get(job_id)


def _label(job) -> str:
    if job.status == "queued":
        return f"queued (position {job.queue_position})"
    return job.progress.stage or job.status
