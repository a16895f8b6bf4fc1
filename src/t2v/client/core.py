"""What the sync and async clients share: request shapes, answers, retry delays, the SSE parser, downloads."""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import time
from pathlib import Path
from typing import Any

from t2v.version import __version__
from t2v.client.errors import (APIError, ConnectionFailed, RateLimited, ServerUnavailable, WaitTimeout, error_from)
from t2v.client.models import Event, Job

log = logging.getLogger("t2v.client")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
RETRY_STATUSES = (429, 503)


def headers_for(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"t2v-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class RetryPolicy:
    """Which failures are retried and how long to wait: ``Retry-After`` when the server sent it, else
    ``backoff * 2**attempt`` seconds (at most ``max_delay``)."""

    def __init__(self, retries: int = DEFAULT_RETRIES, backoff: float = 0.5, max_delay: float = 30.0) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.retries, self.backoff, self.max_delay = retries, backoff, max_delay

    def delay(self, attempt: int, error: APIError) -> float | None:
        """Seconds to wait before try ``attempt + 1``, or None when ``error`` is not retried."""
        if attempt >= self.retries:
            return None
        if isinstance(error, (RateLimited, ServerUnavailable)) and error.status in RETRY_STATUSES:
            given = error.retry_after
        elif isinstance(error, ConnectionFailed):
            given = None
        else:
            return None
        return min(self.max_delay, given if given is not None else self.backoff * 2 ** attempt)


def parse_body(response) -> Any:
    """The response's JSON, or its text when it is not JSON (an error page from a proxy)."""
    try:
        return response.json()
    except ValueError:
        return response.text


def check(response) -> None:
    """Raise the mapped :class:`APIError` for an error status (the body must have been read)."""
    if response.status_code >= 400:
        raise error_from(response.status_code, response.headers, parse_body(response))


def read_image(image: str | Path | bytes) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of an image given as a path or as bytes."""
    if isinstance(image, bytes):
        return "image", image, "application/octet-stream"
    path = Path(image)
    return path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def video_body(prompt: str, image: str | Path | bytes | None, fields: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for POST /v1/videos: JSON, or multipart with the image file (re-sendable bytes)."""
    body = {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None}}
    if image is None:
        return {"json": body}
    return {"data": {"request": json.dumps(body)}, "files": {"image": read_image(image)}}


def post_body(job: str | None, asset: str | None, post: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for POST /v1/post: exactly one source (``job`` or ``asset``), the steps, options."""
    if (job is None) == (asset is None):
        raise ValueError("give exactly one source: job= (a finished job's id) or asset= (an uploaded video's id)")
    source = {"job": job} if job is not None else {"asset": asset}
    return {"json": {**source, "post": dict(post), **{k: v for k, v in fields.items() if v is not None}}}


def list_params(status: str | None, limit: int, cursor: str | None, query: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("status", status), ("cursor", cursor), ("q", query)):
        if value is not None:
            params[name] = value
    return params


class SSEParser:
    """Server-Sent Events, fed one line at a time (lines without their end): :meth:`feed` returns an
    :class:`Event` at each blank line that ends one."""

    def __init__(self) -> None:
        self.event, self.data, self.id = "message", [], None

    def feed(self, line: str) -> Event | None:
        if line == "":
            if not self.data:
                self.event, self.id = "message", None
                return None
            event = make_event(self.event, "\n".join(self.data), self.id)
            self.event, self.data, self.id = "message", [], None
            return event
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.id = value
        return None


def make_event(name: str, text: str, server_id: str | None) -> Event:
    data = json.loads(text)
    job = Job.model_validate(data) if isinstance(data, dict) and "status" in data and "id" in data else None
    return Event(event=name, id=server_id or state_id(name, job), data=data if isinstance(data, dict) else {},
                 job=job)


def state_id(name: str, job: Job | None) -> str:
    """An event id for a server that sends none (before event ids): the state it reports, in the form the
    server's ids have. The server sends an event whenever this state changes, so equal ids mean a repeat."""
    if job is None:
        return name
    p, position = job.progress, job.queue_position
    return f"{job.status}.{p.stage or '-'}.{p.step}.{position if position is not None else '-'}"


IMAGES = ("preview", "poster")


def image_name(name: str) -> str:
    if name not in IMAGES:
        raise ValueError(f"image: {name!r} is not one of {', '.join(IMAGES)}")
    return name


def range_headers(path: Path) -> tuple[int, dict[str, str]]:
    """(bytes already on disk, headers asking for the rest)."""
    have = path.stat().st_size if path.exists() else 0
    return have, ({"Range": f"bytes={have}-"} if have else {})


def verify(path: Path, expected) -> None:
    """Check a finished download against the job's record of the file (size and sha256); a file that
    differs is removed, so the next download starts over."""
    if expected is None:
        return
    if expected.sha256:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        ok = digest.hexdigest() == expected.sha256
    else:
        ok = expected.bytes is None or path.stat().st_size == expected.bytes
    if not ok:
        path.unlink(missing_ok=True)
        raise APIError(f"{path}: the downloaded file does not match the job's sha256; removed it, download again")


SILENCE_S = 5.0  # with a deadline, a stream silent this long is reopened, so its read timeout can shrink


def time_left(deadline: float | None, job_id: str, timeout: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value; None: no deadline, None returned); raises
    :class:`WaitTimeout` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise WaitTimeout(f"no final event of job {job_id} within {timeout}s")
    return left


def shorter(seconds: float, left: float | None) -> float:
    """``seconds``, cut to ``left`` (the time to a deadline) when there is one."""
    return seconds if left is None else min(seconds, left)
