"""Follow a job's Server-Sent Events and draw a Rich progress bar."""

from __future__ import annotations

import json

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from t2v.cli.common import err, out
from t2v.errors import InvalidRequest, JobNotFound, T2VError


def iter_events(lines):
    """Parse an SSE line stream into (event, data) pairs."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def watch(url: str, job_id: str, key: str | None) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.stream("GET", f"{url.rstrip('/')}/v1/videos/{job_id}/events", headers=headers, timeout=None) as r:
            if r.status_code == 404:
                raise JobNotFound(f"no job with id {job_id}")
            if r.status_code in (401, 403):
                raise InvalidRequest(f"the server refused: HTTP {r.status_code} (check --key)", field="key")
            if r.status_code != 200:
                raise T2VError(f"the server answered HTTP {r.status_code}")
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("eta"), TimeRemainingColumn(), console=err) as progress:
                task = progress.add_task("queued", total=None)
                status = "queued"
                for event, job in iter_events(r.iter_lines()):
                    status = job["status"]
                    p = job["progress"]
                    label = f"queued (position {job['queue_position']})" if status == "queued" else (p["stage"] or status)
                    progress.update(task, description=label, completed=p["step"], total=p["total"] or None)
    except httpx.HTTPError as e:
        raise T2VError(f"cannot reach the t2v server at {url}: {e}") from None
    out.print(f"{job_id}: {status}" + (f" ({job.get('error')})" if job.get("error") else ""), highlight=False)
    return status
