"""``AsyncClient``: the t2v REST API over httpx (asyncio). The same methods as :class:`t2v_client.Client`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource

from t2v_client import core
from t2v_client.errors import APIError, ConnectionFailed, RateLimited, ServerUnavailable, WaitTimeout
from t2v_client.models import Asset, Batch, Event, Job, JobPage, ModelList, RecordPage


class AsyncClient(core.Base):
    """See :class:`t2v_client.Client`; every method is a coroutine (``events``/``iter_jobs``/``search``:
    async iterators)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = core.DEFAULT_TIMEOUT, retries: int = core.DEFAULT_RETRIES, backoff: float = 0.5,
                 **httpx_kwargs: Any) -> None:
        super().__init__(base_url, api_key, timeout=timeout, retries=retries, backoff=backoff)
        self.sleep = asyncio.sleep  # replaceable (tests record the waits)
        self.http = httpx.AsyncClient(**self.http_options(httpx_kwargs))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    # -- transport -----------------------------------------------------------------------------
    async def send(self, method: str, path: str, *, idempotent: bool, stream: bool = False,
                   allow: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.http.send(self.http.build_request(method, path, **kwargs), stream=stream)
            except httpx.TransportError as e:
                error: APIError = self.unreachable(method, path, e)
            else:
                if response.status_code < 400 or response.status_code in allow:
                    return response
                await response.aread()
                await response.aclose()
                try:
                    self.check(response)
                except APIError as e:
                    error = e
            wait = self.policy.delay(attempt, error) if idempotent else None
            if wait is None:
                raise error
            core.log.info("%s %s: %s; retrying in %.1fs", method, path, error, wait)
            await self.sleep(wait)
            attempt += 1

    @asynccontextmanager
    async def stream(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        response = await self.send(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            await response.aclose()

    async def call(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        response = await self.send(method, path, idempotent=idempotent, **kwargs)
        return core.parse_body(response) if response.content else None

    # -- jobs ----------------------------------------------------------------------------------
    async def submit(self, prompt: str, *, image: str | Path | bytes | None = None,
                     idempotency_key: str | None = None, **fields: Any) -> Job:
        body = core.video_body(prompt, image, {**fields, "idempotency_key": idempotency_key})
        return Job.model_validate(await self.call("POST", "/v1/videos", idempotent=idempotency_key is not None,
                                                  **body))

    async def get(self, job_id: str) -> Job:
        return Job.model_validate(await self.call("GET", f"/v1/videos/{job_id}"))

    async def list(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None,
                   query: str | None = None) -> JobPage:
        params = core.list_params(status, limit, cursor, query)
        return JobPage.model_validate(await self.call("GET", "/v1/videos", params=params))

    def search(self, query: str, *, status: str | None = None, page_size: int = 50) -> AsyncIterator[Job]:
        return self.iter_jobs(status=status, query=query, page_size=page_size)

    async def iter_jobs(self, *, status: str | None = None, query: str | None = None,
                        page_size: int = 50) -> AsyncIterator[Job]:
        cursor = None
        while True:
            page = await self.list(status=status, limit=page_size, cursor=cursor, query=query)
            for job in page.items:
                yield job
            if not (cursor := page.next_cursor):
                return

    async def cancel(self, job_id: str, *, purge: bool = False) -> Job:
        return Job.model_validate(await self.call("DELETE", f"/v1/videos/{job_id}",
                                                  params={"purge": str(purge).lower()}))

    async def change_job(self, job_id: str, *, priority: int | None = None, **fields: Any) -> Job:
        """Change a queued job: its ``priority`` and/or request ``fields``."""
        body = {**fields, **({"priority": priority} if priority is not None else {})}
        return Job.model_validate(await self.call("PATCH", f"/v1/videos/{job_id}", json=body))

    async def pause_job(self, job_id: str) -> Job:
        return Job.model_validate(await self.call("POST", f"/v1/videos/{job_id}/pause"))

    async def resume_job(self, job_id: str) -> Job:
        return Job.model_validate(await self.call("POST", f"/v1/videos/{job_id}/resume"))

    async def submit_batch(self, requests: list[dict[str, Any]], *, priority: int = 0,
                           idempotency_key: str | None = None, partial: bool = False) -> Batch:
        body = {"requests": requests, "priority": priority, "partial": partial, "idempotency_key": idempotency_key}
        return Batch.model_validate(await self.call("POST", "/v1/batches", json=body,
                                                    idempotent=idempotency_key is not None))

    async def batch(self, batch_id: str) -> Batch:
        return Batch.model_validate(await self.call("GET", f"/v1/batches/{batch_id}"))

    async def control_batch(self, batch_id: str, action: str) -> Batch:
        return Batch.model_validate(await self.call("POST", f"/v1/batches/{batch_id}/{action}"))

    async def delete(self, job_id: str) -> Job:
        """Remove a finished job, its files and its record; cancel and purge one that has not finished."""
        return Job.model_validate(await self.call("DELETE", f"/v1/videos/{job_id}", params={"remove": "true"}))

    async def metadata(self, job_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/videos/{job_id}/metadata")

    async def records(self, query: str | None = None, *, source: str = "sql", limit: int = 50) -> list[dict[str, Any]]:
        """Records of finished jobs, newest first (``source``: "sql" or "mongodb"; ``query``: prompt words)."""
        params = core.records_params(query, source, limit)
        return RecordPage.model_validate(await self.call("GET", "/v1/records", params=params)).items

    async def image(self, job_id: str, name: str = "preview") -> bytes | None:
        """A job's PNG (``preview`` or ``poster``); None while it has none."""
        response = await self.send("GET", f"/v1/videos/{job_id}/{core.image_name(name)}", idempotent=True,
                                   allow=(404,))
        return response.content if response.status_code == 200 else None

    async def live(self, job_id: str) -> bytes | None:
        """The clip a running job has made so far (a growing mp4), or the finished mp4; None while there is none."""
        response = await self.send("GET", f"/v1/videos/{job_id}/content", idempotent=True, allow=(409, 416),
                                   headers={"Range": "bytes=0-"})
        return response.content if response.status_code in (200, 206) else None

    async def models(self) -> ModelList:
        return ModelList.model_validate(await self.call("GET", "/v1/models"))

    async def healthy(self) -> bool:
        try:
            return (await self.call("GET", "/healthz", idempotent=False)).get("status") == "ok"
        except APIError:
            return False

    async def post_process(self, post: dict[str, Any], *, job: str | None = None, asset: str | None = None,
                           idempotency_key: str | None = None, **fields: Any) -> Job:
        """See :meth:`t2v_client.Client.post_process`."""
        body = core.post_body(job, asset, post, {**fields, "idempotency_key": idempotency_key})
        return Job.model_validate(await self.call("POST", "/v1/post", idempotent=idempotency_key is not None,
                                                  **body))

    # -- assets --------------------------------------------------------------------------------
    async def upload(self, image: str | Path | bytes) -> Asset:
        return Asset.model_validate(await self.call("POST", "/v1/assets", idempotent=False,
                                                    files={"file": core.read_image(image)}))

    async def get_asset(self, asset_id: str) -> Asset:
        return Asset.model_validate(await self.call("GET", f"/v1/assets/{asset_id}"))

    async def asset_bytes(self, asset_id: str) -> bytes:
        """See :meth:`t2v_client.Client.asset_bytes`."""
        return (await self.send("GET", f"/v1/assets/{asset_id}/content", idempotent=True)).content

    async def delete_asset(self, asset_id: str) -> None:
        await self.call("DELETE", f"/v1/assets/{asset_id}")

    # -- streams -------------------------------------------------------------------------------
    async def events(self, job_id: str, *, last_event_id: str | None = None, reconnect: int = 5,
                     timeout: float | None = None) -> AsyncIterator[Event]:
        deadline, state = self.deadline(job_id, timeout), self.resume(job_id, last_event_id, reconnect)
        while True:
            limits = deadline.stream_timeout(self.timeout)
            try:
                async with self.stream("GET", f"/v1/videos/{job_id}/events", idempotent=deadline.at is None,
                                       headers=state.headers(), timeout=limits) as response:
                    async for sse in EventSource(core.watched(response, deadline)).aiter_sse():
                        event, over = state.sort(sse)
                        if event is not None:
                            yield event
                        if over:
                            return
                if state.last is not None and (await self.get(job_id)).finished:
                    return  # ended cleanly after the final state, delivered before (resumed past the end)
                error: Exception = EOFError("it ended before the final event")
            except (httpx.TransportError, ConnectionFailed) as e:
                deadline.left()  # past the deadline: WaitTimeout
                if deadline.at is not None and isinstance(e, httpx.ReadTimeout):
                    continue  # silent for a while (a queued job): reopen, resuming after the last event
                error = e
            await self.sleep(deadline.cut(state.broke(error)))

    async def wait(self, job_id: str, *, timeout: float | None = None, poll_interval: float = 1.0) -> Job:
        deadline = self.deadline(job_id, timeout)
        try:
            async for event in self.events(job_id, timeout=timeout):
                if event.final and event.job is not None:
                    return event.job
                if event.final or deadline.passed():
                    break
        except (ConnectionFailed, RateLimited, ServerUnavailable) as e:
            core.log.info("events of %s unavailable (%s): polling", job_id, e)
        except WaitTimeout:
            pass  # the deadline passed on the stream: one last look below, then WaitTimeout
        while True:
            job = await self.get(job_id)
            if job.finished:
                return job
            if deadline.passed():
                raise self.errors.WaitTimeout(f"job {job_id} is still {job.status} after {timeout}s")
            await self.sleep(deadline.poll_pause(poll_interval))

    async def download(self, job_id: str, path: str | Path, *, format: str = "mp4") -> Path:
        path = Path(path)
        expected = (await self.get(job_id)).file(format)
        for attempt in range(self.policy.retries + 1):
            have, headers = core.range_headers(path)
            try:
                async with self.stream("GET", f"/v1/videos/{job_id}/content", idempotent=True, allow=(416,),
                                       params={"format": format}, headers=headers) as response:
                    if response.status_code != 416:  # 416: nothing left to fetch
                        with path.open("ab" if response.status_code == 206 else "wb") as f:
                            async for chunk in response.aiter_bytes():
                                f.write(chunk)
                break
            except httpx.TransportError as e:
                if attempt == self.policy.retries:
                    raise self.unreachable("GET", f"/v1/videos/{job_id}/content", e) from None
                core.log.info("download of %s broke at %d bytes: %s; resuming", job_id, have, e)
        self.verify(path, expected)
        return path
