"""``Client``: the t2v REST API over httpx (synchronous)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource

from t2v_client import core
from t2v_client.errors import APIError, ConnectionFailed, RateLimited, ServerUnavailable, WaitTimeout
from t2v_client.models import Asset, Batch, Event, Job, JobPage, ModelList, RecordPage


class Client(core.Base):
    """A t2v server's jobs: ``submit``, ``get``, ``list``/``search``, ``events``, ``wait``, ``download``,
    ``cancel``, ``delete``, ``models``, ``post_process``, and image and video assets.

    ``retries``: how often a request is tried again after 429, 503 or a failed connection, waiting
    ``Retry-After`` seconds when the server says (else exponential backoff). Only idempotent requests
    are retried, and ``submit`` only with an ``idempotency_key``. Extra keyword arguments go to
    :class:`httpx.Client` (e.g. ``transport``, ``verify``).
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = core.DEFAULT_TIMEOUT, retries: int = core.DEFAULT_RETRIES, backoff: float = 0.5,
                 **httpx_kwargs: Any) -> None:
        super().__init__(base_url, api_key, timeout=timeout, retries=retries, backoff=backoff)
        self.sleep = time.sleep  # replaceable (tests record the waits)
        self.http = httpx.Client(**self.http_options(httpx_kwargs))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- transport -----------------------------------------------------------------------------
    def send(self, method: str, path: str, *, idempotent: bool, stream: bool = False, allow: tuple[int, ...] = (),
             **kwargs: Any) -> httpx.Response:
        """One request, retried per the policy; an error status raises its :class:`APIError` (except ``allow``).
        With ``stream`` the caller reads and closes the response."""
        attempt = 0
        while True:
            try:
                response = self.http.send(self.http.build_request(method, path, **kwargs), stream=stream)
            except httpx.TransportError as e:
                error: APIError = self.unreachable(method, path, e)
            else:
                if response.status_code < 400 or response.status_code in allow:
                    return response
                response.read()
                response.close()
                try:
                    self.check(response)
                except APIError as e:
                    error = e
            wait = self.policy.delay(attempt, error) if idempotent else None
            if wait is None:
                raise error
            core.log.info("%s %s: %s; retrying in %.1fs", method, path, error, wait)
            self.sleep(wait)
            attempt += 1

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """``send`` with ``stream=True``, closing the response afterwards."""
        response = self.send(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()

    def call(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        response = self.send(method, path, idempotent=idempotent, **kwargs)
        return core.parse_body(response) if response.content else None

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, prompt: str, *, image: str | Path | bytes | None = None, idempotency_key: str | None = None,
               **fields: Any) -> Job:
        """Queue a job: the fields of POST /v1/videos (``num_frames``, ``width``, ``seed``, ``formats``, ...;
        ``image=`` an uploaded asset's id goes in ``fields`` as ``image_id``). ``image`` is a file (path or
        bytes) sent with the request as multipart. Retried only with an ``idempotency_key``, which makes
        a repeat return the same job."""
        body = core.video_body(prompt, image, {**fields, "idempotency_key": idempotency_key})
        return Job.model_validate(self.call("POST", "/v1/videos", idempotent=idempotency_key is not None, **body))

    def get(self, job_id: str) -> Job:
        return Job.model_validate(self.call("GET", f"/v1/videos/{job_id}"))

    def list(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None,
             query: str | None = None) -> JobPage:
        """One page of jobs, newest first (``query``: a substring of the prompt)."""
        params = core.list_params(status, limit, cursor, query)
        return JobPage.model_validate(self.call("GET", "/v1/videos", params=params))

    def search(self, query: str, *, status: str | None = None, page_size: int = 50) -> Iterator[Job]:
        """Every job whose prompt contains ``query`` (all pages, newest first)."""
        return self.iter_jobs(status=status, query=query, page_size=page_size)

    def iter_jobs(self, *, status: str | None = None, query: str | None = None, page_size: int = 50) -> Iterator[Job]:
        cursor = None
        while True:
            page = self.list(status=status, limit=page_size, cursor=cursor, query=query)
            yield from page.items
            if not (cursor := page.next_cursor):
                return

    def cancel(self, job_id: str, *, purge: bool = False) -> Job:
        """Cancel a queued or running job (a finished one is returned as it is); ``purge`` removes its files."""
        return Job.model_validate(self.call("DELETE", f"/v1/videos/{job_id}", params={"purge": str(purge).lower()}))

    def change_job(self, job_id: str, *, priority: int | None = None, **fields: Any) -> Job:
        """Change a queued job: its ``priority`` and/or request ``fields`` (checked as at submit; 409 once it has
        left the queue)."""
        body = {**fields, **({"priority": priority} if priority is not None else {})}
        return Job.model_validate(self.call("PATCH", f"/v1/videos/{job_id}", json=body))

    def pause_job(self, job_id: str) -> Job:
        """Pause a queued job (skipped until resumed) or a running one (it stops at its next step, checkpoint kept)."""
        return Job.model_validate(self.call("POST", f"/v1/videos/{job_id}/pause"))

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job (from its checkpoint)."""
        return Job.model_validate(self.call("POST", f"/v1/videos/{job_id}/resume"))

    def submit_batch(self, requests: list[dict[str, Any]], *, priority: int = 0, idempotency_key: str | None = None,
                     partial: bool = False) -> Batch:
        """Queue many jobs under one batch id (each request as :meth:`submit` takes its fields): all or none,
        or with ``partial`` the valid ones (``invalid`` lists the others). Retried only with an
        ``idempotency_key``, which makes a repeat return the same batch."""
        body = {"requests": requests, "priority": priority, "partial": partial, "idempotency_key": idempotency_key}
        return Batch.model_validate(self.call("POST", "/v1/batches", json=body, idempotent=idempotency_key is not None))

    def batch(self, batch_id: str) -> Batch:
        """A batch: its job ids and their counts by state."""
        return Batch.model_validate(self.call("GET", f"/v1/batches/{batch_id}"))

    def control_batch(self, batch_id: str, action: str) -> Batch:
        """``cancel``, ``pause`` or ``resume`` every job of the batch that can be."""
        return Batch.model_validate(self.call("POST", f"/v1/batches/{batch_id}/{action}"))

    def delete(self, job_id: str) -> Job:
        """Remove a finished job, its files and its record (afterwards it is not found); a job that has not
        finished is cancelled and its files purged (``DELETE ...?remove=true``). Returns its last state."""
        return Job.model_validate(self.call("DELETE", f"/v1/videos/{job_id}", params={"remove": "true"}))

    def metadata(self, job_id: str) -> dict[str, Any]:
        """A succeeded job's reproducibility record."""
        return self.call("GET", f"/v1/videos/{job_id}/metadata")

    def records(self, query: str | None = None, *, source: str = "sql", limit: int = 50) -> list[dict[str, Any]]:
        """Records of finished jobs, newest first (``source``: "sql" or "mongodb"; ``query``: prompt words)."""
        params = core.records_params(query, source, limit)
        return RecordPage.model_validate(self.call("GET", "/v1/records", params=params)).items

    def image(self, job_id: str, name: str = "preview") -> bytes | None:
        """A job's PNG: ``preview`` (the running job's latest step) or ``poster`` (the finished clip's middle
        frame); None while it has none."""
        response = self.send("GET", f"/v1/videos/{job_id}/{core.image_name(name)}", idempotent=True, allow=(404,))
        return response.content if response.status_code == 200 else None

    def live(self, job_id: str) -> bytes | None:
        """The clip a running job has made so far (an mp4 that grows as the job makes it, from its first
        finished part), or once it has succeeded the finished mp4; None while there is none yet."""
        response = self.send("GET", f"/v1/videos/{job_id}/content", idempotent=True, allow=(409, 416),
                             headers={"Range": "bytes=0-"})
        return response.content if response.status_code in (200, 206) else None

    def models(self) -> ModelList:
        return ModelList.model_validate(self.call("GET", "/v1/models"))

    def healthy(self) -> bool:
        try:
            return self.call("GET", "/healthz", idempotent=False).get("status") == "ok"
        except APIError:
            return False

    def post_process(self, post: dict[str, Any], *, job: str | None = None, asset: str | None = None,
                     idempotency_key: str | None = None, **fields: Any) -> Job:
        """Queue a post-processing job (POST /v1/post) of a succeeded ``job``'s video or an uploaded video ``asset``
        (exactly one): ``post`` holds the steps, as the ``post`` block of a video request (``{"interpolate": 2}``,
        ``{"upscale": 2}``, ``{"deflicker": True}``); ``fields``: ``formats``, ``crf``, ``priority``, ``callback_url``.
        Wait for it, download it and read its record like any job. Retried only with an ``idempotency_key``."""
        body = core.post_body(job, asset, post, {**fields, "idempotency_key": idempotency_key})
        return Job.model_validate(self.call("POST", "/v1/post", idempotent=idempotency_key is not None, **body))

    # -- assets --------------------------------------------------------------------------------
    def upload(self, image: str | Path | bytes) -> Asset:
        """Upload an image or a video (mp4, webm or gif; POST /v1/assets); pass an image's ``id`` to
        ``submit(image_id=...)``, a video's to ``submit(video=..., strength=...)`` (video-to-video) or to
        ``post_process(asset=...)``."""
        return Asset.model_validate(self.call("POST", "/v1/assets", idempotent=False,
                                              files={"file": core.read_image(image)}))

    def get_asset(self, asset_id: str) -> Asset:
        return Asset.model_validate(self.call("GET", f"/v1/assets/{asset_id}"))

    def asset_bytes(self, asset_id: str) -> bytes:
        """An uploaded asset's bytes, as uploaded (GET /v1/assets/{id}/content)."""
        return self.send("GET", f"/v1/assets/{asset_id}/content", idempotent=True).content

    def delete_asset(self, asset_id: str) -> None:
        self.call("DELETE", f"/v1/assets/{asset_id}")

    # -- streams -------------------------------------------------------------------------------
    def events(self, job_id: str, *, last_event_id: str | None = None, reconnect: int = 5,
               timeout: float | None = None) -> Iterator[Event]:
        """The job's events until its final one. A dropped connection is resumed (``reconnect`` times in a
        row at most) with ``Last-Event-ID``; an event already delivered is not delivered again. Pass the
        last id you saw as ``last_event_id`` to resume a stream yourself. With ``timeout`` (seconds) the
        stream raises :class:`WaitTimeout` when no final event has come by then, also while the server
        sends nothing or only keep-alive comments (at most a few seconds late: a stream silent for
        ``min(timeout, 5)`` seconds is reopened, resuming after its last event); the stream request is
        then not retried by the client's policy (an error answer is raised at once)."""
        deadline, state = self.deadline(job_id, timeout), self.resume(job_id, last_event_id, reconnect)
        while True:
            limits = deadline.stream_timeout(self.timeout)
            try:
                with self.stream("GET", f"/v1/videos/{job_id}/events", idempotent=deadline.at is None,
                                 headers=state.headers(), timeout=limits) as response:
                    for sse in EventSource(core.watched(response, deadline)).iter_sse():
                        event, over = state.sort(sse)
                        if event is not None:
                            yield event
                        if over:
                            return
                if state.last is not None and self.get(job_id).finished:
                    return  # ended cleanly after the final state, delivered before (resumed past the end)
                error: Exception = EOFError("it ended before the final event")
            except (httpx.TransportError, ConnectionFailed) as e:
                deadline.left()  # past the deadline: WaitTimeout
                if deadline.at is not None and isinstance(e, httpx.ReadTimeout):
                    continue  # silent for a while (a queued job): reopen, resuming after the last event
                error = e
            self.sleep(deadline.cut(state.broke(error)))

    def wait(self, job_id: str, *, timeout: float | None = None, poll_interval: float = 1.0) -> Job:
        """Block until the job has finished and return it: by its event stream, else by polling ``get``.
        Raises :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = self.deadline(job_id, timeout)
        try:
            for event in self.events(job_id, timeout=timeout):
                if event.final and event.job is not None:
                    return event.job
                if event.final or deadline.passed():
                    break
        except (ConnectionFailed, RateLimited, ServerUnavailable) as e:
            core.log.info("events of %s unavailable (%s): polling", job_id, e)
        except WaitTimeout:
            pass  # the deadline passed on the stream: one last look below, then WaitTimeout
        while True:
            job = self.get(job_id)
            if job.finished:
                return job
            if deadline.passed():
                raise self.errors.WaitTimeout(f"job {job_id} is still {job.status} after {timeout}s")
            self.sleep(deadline.poll_pause(poll_interval))

    def download(self, job_id: str, path: str | Path, *, format: str = "mp4") -> Path:
        """Save a succeeded job's file to ``path``. A partial file there is continued (HTTP Range), also
        after a broken connection; the result is checked against the job's sha256."""
        path = Path(path)
        expected = self.get(job_id).file(format)
        for attempt in range(self.policy.retries + 1):
            have, headers = core.range_headers(path)
            try:
                with self.stream("GET", f"/v1/videos/{job_id}/content", idempotent=True, allow=(416,),
                                 params={"format": format}, headers=headers) as response:
                    if response.status_code != 416:  # 416: nothing left to fetch
                        with path.open("ab" if response.status_code == 206 else "wb") as f:
                            for chunk in response.iter_bytes():
                                f.write(chunk)
                break
            except httpx.TransportError as e:
                if attempt == self.policy.retries:
                    raise self.unreachable("GET", f"/v1/videos/{job_id}/content", e) from None
                core.log.info("download of %s broke at %d bytes: %s; resuming", job_id, have, e)
        self.verify(path, expected)
        return path
