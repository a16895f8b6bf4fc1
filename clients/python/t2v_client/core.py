"""What the sync and async clients share: settings, request shapes, answers, retry delays, deadlines, the
event stream's bookkeeping and downloads' checks."""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from t2v_client.errors import APIError, ConnectionFailed, Errors, RateLimited, ServerUnavailable
from t2v_client.models import Event, Job, JobFile
from t2v_client.version import __version__

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
RETRY_STATUSES = (429, 503)
SILENCE_S = 5.0  # with a deadline, a stream silent this long is reopened, so its read timeout can shrink


class RetryPolicy:
    """Which failures are retried and how long to wait: ``Retry-After`` when the server sent it, else
    ``backoff * 2**attempt`` seconds (at most ``max_delay``)."""

    def __init__(self, retries: int = DEFAULT_RETRIES, backoff: float = 0.5, max_delay: float = 30.0) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0 (got {retries}; 0 tries once)")
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


class Base:
    """What :class:`~t2v_client.Client` and :class:`~t2v_client.AsyncClient` share: the server's address, the
    retry policy, and ``errors``, the exception classes they raise (see :class:`t2v_client.errors.Errors`)."""

    errors: type[Errors] = Errors

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float, retries: int, backoff: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(retries, backoff)
        self.timeout = timeout
        self.headers = {"User-Agent": f"t2v-client/{__version__}", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def http_options(self, extra: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the httpx client: the address, headers and timeout, then the caller's own."""
        return {"base_url": self.base_url, "headers": self.headers, "timeout": self.timeout, **extra}

    def check(self, response: httpx.Response) -> None:
        """Raise the mapped :class:`APIError` for an error status (the body must have been read)."""
        if response.status_code >= 400:
            raise self.errors.from_response(response.status_code, response.headers, parse_body(response))

    def unreachable(self, method: str, path: str, error: Exception) -> ConnectionFailed:
        return self.errors.ConnectionFailed(f"{method} {self.base_url}{path}: {error}")

    def deadline(self, job_id: str, timeout: float | None) -> Deadline:
        return Deadline(job_id, timeout, self.errors)

    def resume(self, job_id: str, last_event_id: str | None, reconnect: int) -> Resume:
        return Resume(job_id, last_event_id, reconnect, self.policy.backoff, self.errors)

    def verify(self, path: Path, expected: JobFile | None) -> None:
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
            raise self.errors.APIError(f"{path}: the downloaded file does not match the job's sha256; removed it, "
                                       "download again")


def parse_body(response: httpx.Response) -> Any:
    """The response's JSON, or its text when it is not JSON (an error page from a proxy)."""
    try:
        return response.json()
    except ValueError:
        return response.text


def read_image(image: str | Path | bytes) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of a file given as a path or as bytes."""
    if isinstance(image, bytes):
        return "image", image, "application/octet-stream"
    path = Path(image)
    return path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def video_body(prompt: str, image: str | Path | bytes | None, fields: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments for POST /v1/videos: JSON, or multipart with the image file (re-sendable bytes)."""
    for alias, name in (("image_id", "image"), ("last_image_id", "last_image")):  # the ids of uploaded assets
        if alias in fields:
            fields = {**{k: v for k, v in fields.items() if k != alias}, name: fields[alias]}
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


def records_params(query: str | None, source: str, limit: int) -> dict[str, Any]:
    return {"source": source, "limit": limit, **({"q": query} if query else {})}


IMAGES = ("preview", "poster")


def image_name(name: str) -> str:
    if name not in IMAGES:
        raise ValueError(f"image: {name!r} is not one of {', '.join(IMAGES)}")
    return name


def range_headers(path: Path) -> tuple[int, dict[str, str]]:
    """(bytes already on disk, headers asking for the rest)."""
    have = path.stat().st_size if path.exists() else 0
    return have, ({"Range": f"bytes={have}-"} if have else {})


# -- deadlines -----------------------------------------------------------------------------------------------

class Deadline:
    """The end of a wait for job ``job_id``: ``timeout`` seconds from now (None: no end)."""

    def __init__(self, job_id: str, timeout: float | None, errors: type[Errors]) -> None:
        self.job_id, self.timeout, self.errors = job_id, timeout, errors
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        """Seconds until the end (None: no end); raises ``WaitTimeout`` once it has passed."""
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.errors.WaitTimeout(f"no final event of job {self.job_id} within {self.timeout}s")
        return left

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() > self.at

    def cut(self, seconds: float) -> float:
        """``seconds``, cut to the time left when there is an end."""
        left = self.left()
        return seconds if left is None else min(seconds, left)

    def poll_pause(self, interval: float) -> float:
        return interval if self.at is None else max(0.0, min(interval, self.at - time.monotonic()))

    def stream_timeout(self, timeout: float) -> httpx.Timeout:
        """An event stream's timeouts: with an end, no read waits past it (a long silence is cut into
        pieces of ``SILENCE_S``, each reopening the stream after its last event)."""
        left = self.left()
        if left is None:
            return httpx.Timeout(timeout, read=None)
        return httpx.Timeout(min(timeout, left), read=min(left, SILENCE_S))


class Watched(httpx.SyncByteStream):
    """A response's body, calling ``check`` before each chunk: keep-alive comments arrive as chunks but make
    no event, so a deadline is kept on a stream that sends nothing else."""

    def __init__(self, response: httpx.Response, check: Callable[[], object]) -> None:
        self.response, self.check = response, check

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.response.iter_bytes():
            self.check()
            yield chunk

    def close(self) -> None:
        self.response.close()


class AsyncWatched(httpx.AsyncByteStream):
    """:class:`Watched` for an async response."""

    def __init__(self, response: httpx.Response, check: Callable[[], object]) -> None:
        self.response, self.check = response, check

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_bytes():
            self.check()
            yield chunk

    async def aclose(self) -> None:
        await self.response.aclose()


def watched(response: httpx.Response, deadline: Deadline) -> httpx.Response:
    """``response`` read through :class:`Watched` (or :class:`AsyncWatched`), which raises ``WaitTimeout`` once
    ``deadline`` has passed. Its body is decoded already, so it has no ``Content-Encoding``."""
    stream = AsyncWatched if isinstance(response.stream, httpx.AsyncByteStream) else Watched
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
    return httpx.Response(response.status_code, headers=headers, stream=stream(response, deadline.left),
                          request=response.request)


# -- the event stream ----------------------------------------------------------------------------------------

class Resume:
    """Where a job's event stream is: the last event id delivered (sent back as ``Last-Event-ID`` when the
    stream is reopened) and how many connections broke in a row."""

    def __init__(self, job_id: str, last: str | None, reconnect: int, backoff: float, errors: type[Errors]) -> None:
        self.job_id, self.last, self.reconnect, self.backoff, self.errors = job_id, last, reconnect, backoff, errors
        self.last_name: str | None = None  # the last delivered event's name (None: not known)
        self.failures = 0

    def headers(self) -> dict[str, str]:
        return {"Accept": "text/event-stream", "Cache-Control": "no-store",
                **({"Last-Event-ID": self.last} if self.last else {})}

    def sort(self, sse: ServerSentEvent) -> tuple[Event | None, bool]:
        """(the event to deliver, None for one delivered before the connection dropped or one without data;
        whether the stream is over). An event sent without an ``id:`` carries the one before it (the SSE
        rule), so a repeat is the same id under the same name: an ``error`` after a progress event is new."""
        if not sse.data:  # e.g. a lone ``retry:`` field
            return None, False
        event = make_event(sse.event, sse.data, sse.id or None)
        if event.id == self.last and self.last_name in (None, event.event):
            return None, event.final
        self.last, self.last_name, self.failures = event.id, event.event, 0
        return event, event.final

    def broke(self, error: Exception) -> float:
        """Count a broken connection: the pause before reopening, or ``ConnectionFailed`` after too many."""
        log.info("event stream of %s broke: %s", self.job_id, error)
        self.failures += 1
        if self.failures > self.reconnect:
            raise self.errors.ConnectionFailed(
                f"the event stream of job {self.job_id} ended {self.failures} times without a final event")
        return min(5.0, self.backoff * 2 ** (self.failures - 1))


def make_event(name: str, text: str, server_id: str | None) -> Event:
    data = json.loads(text)
    job = Job.model_validate(data) if isinstance(data, dict) and "status" in data and "id" in data else None
    return Event(event=name, id=server_id or state_id(name, job), data=data if isinstance(data, dict) else {},
                 job=job)


def state_id(name: str, job: Job | None) -> str:
    """An event id for a server that sends none: the state it reports, in the form the server's ids have.
    The server sends an event whenever this state changes, so equal ids mean a repeat."""
    if job is None:
        return name
    p, position = job.progress, job.queue_position
    return f"{job.status}.{p.stage or '-'}.{p.step}.{position if position is not None else '-'}"
