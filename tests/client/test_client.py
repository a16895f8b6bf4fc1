"""t2v.client against a real ``t2v serve`` (tiny model, API keys on), plus retries over a mock transport."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from t2v import errors as lib_errors
from t2v.client import (AsyncClient, Client, Conflict, InvalidRequest, NotFound, RateLimited, ServerUnavailable,
                        Unauthorized)
from tests.api.test_assets import I2V, png, tiny_i2v  # noqa: F401  (a fixture)
from tests.client.conftest import SMALL


@pytest.fixture
def client(server):
    with Client(server.url, server.key, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def done_job(server):
    """A succeeded job (mp4 and gif), shared by the read-only tests."""
    with Client(server.url, server.key) as c:
        job = c.submit("a red ball bouncing", seed=1, formats=["mp4", "gif"], **SMALL)
        return c.wait(job.id, timeout=120)


def test_submit_get_wait_and_typed_results(client, done_job):
    assert done_job.status == "succeeded" and done_job.finished
    assert done_job.progress.fraction == 1.0
    mp4 = done_job.file("mp4")
    assert mp4 is not None and mp4.sha256 and mp4.bytes > 0
    again = client.get(done_job.id)
    assert again.id == done_job.id and again.request["num_frames"] == 4
    assert client.metadata(done_job.id)["seed"] == 1


def test_idempotent_submit_returns_the_same_job(client):
    first = client.submit("idempotent", idempotency_key="k-1", **SMALL)
    second = client.submit("idempotent", idempotency_key="k-1", **SMALL)
    assert first.id == second.id
    client.wait(first.id, timeout=120)


def test_list_paging_and_search(client, done_job):
    for i in range(2):
        client.submit(f"zebra number {i}", **SMALL)
    page = client.list(limit=1, query="zebra")
    assert len(page.items) == 1 and page.next_cursor
    found = list(client.search("zebra", page_size=1))
    assert sorted(j.request["prompt"] for j in found) == ["zebra number 0", "zebra number 1"]
    assert done_job.id in [j.id for j in client.list(status="succeeded", limit=200).items]
    for job in found:
        client.wait(job.id, timeout=120)


def test_models(client, server):
    models = client.models()
    assert models.default == server.name  # the folder's public name, never its path
    assert models.items and all(m.id for m in models.items)


class DropFirstEventStream(httpx.BaseTransport):
    """The real server, but the first /events connection breaks right after its first event."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.last_event_ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if len(self.last_event_ids) > 1:
            return response
        return httpx.Response(response.status_code, headers=response.headers, stream=CutAfterFirstEvent(response))

    def close(self) -> None:
        self.inner.close()


class CutAfterFirstEvent(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __iter__(self):
        seen = b""
        for chunk in self.response.stream:
            seen += chunk
            if b"\n\n" in seen:
                yield seen[: seen.index(b"\n\n") + 2]
                self.response.close()
                raise httpx.RemoteProtocolError("connection dropped (test)")
            yield chunk

    def close(self) -> None:
        self.response.close()


def test_events_resume_after_a_dropped_connection(server):
    transport = DropFirstEventStream()
    with Client(server.url, server.key, transport=transport, backoff=0.05) as c:
        job = c.submit("resume my stream", **{**SMALL, "num_inference_steps": 6})
        events = list(c.events(job.id))
    assert len(transport.last_event_ids) >= 2  # it reconnected
    assert transport.last_event_ids[0] is None and transport.last_event_ids[1] == events[0].id
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))  # nothing delivered twice
    assert [e.event for e in events][-1] == "succeeded" and sum(e.final for e in events) == 1
    order = ["queued", "running", "succeeded"]
    states = [(order.index(e.job.status), e.job.progress.step if e.job.status == "running" else 0) for e in events]
    assert states == sorted(states)  # in order: none repeated or reordered across the reconnect


def test_events_of_a_finished_job_and_resume_past_the_end(client, done_job):
    events = list(client.events(done_job.id))
    assert [e.event for e in events] == ["succeeded"] and events[0].job.id == done_job.id
    assert list(client.events(done_job.id, last_event_id=events[0].id)) == []


def test_download_resumes_a_partial_file(server, client, done_job, tmp_path):
    full = client.download(done_job.id, tmp_path / "full.mp4")
    data = full.read_bytes()
    assert hashlib.sha256(data).hexdigest() == done_job.file("mp4").sha256
    part = tmp_path / "part.mp4"
    part.write_bytes(data[: len(data) // 2])
    seen = []
    hooks = {"response": [lambda r: seen.append((r.request.headers.get("range"), r.status_code))]}
    with Client(server.url, server.key, event_hooks=hooks) as c:
        c.download(done_job.id, part)
        assert part.read_bytes() == data
        assert (f"bytes={len(data) // 2}-", 206) in seen
        c.download(done_job.id, part)  # complete already: 416, nothing rewritten
        assert part.read_bytes() == data and seen[-1][1] == 416
    gif = client.download(done_job.id, tmp_path / "v.gif", format="gif")
    assert gif.read_bytes()[:3] == b"GIF"


class CutFirstDownload(httpx.BaseTransport):
    """The real server, but the first /content answer breaks after 100 bytes."""

    def __init__(self) -> None:
        self.inner, self.ranges = httpx.HTTPTransport(), []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/content"):
            self.ranges.append(request.headers.get("range"))
            if len(self.ranges) == 1:
                return httpx.Response(response.status_code, headers=response.headers, stream=CutAfter(response, 100))
        return response


class CutAfter(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, size: int) -> None:
        self.response, self.size = response, size

    def __iter__(self):
        data = b"".join(self.response.stream)
        self.response.close()
        yield data[: self.size]
        raise httpx.RemoteProtocolError("connection dropped (test)")


def test_download_resumes_after_a_broken_connection(server, done_job, tmp_path):
    transport = CutFirstDownload()
    with Client(server.url, server.key, transport=transport) as c:
        path = c.download(done_job.id, tmp_path / "v.mp4")
    assert transport.ranges == [None, "bytes=100-"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == done_job.file("mp4").sha256


def test_cancel_delete_and_conflict(client, tmp_path):
    ahead = client.submit("keeps the worker busy", **{**SMALL, "num_inference_steps": 8})
    job = client.submit("cancel me", priority=-100, **SMALL)
    cancelled = client.cancel(job.id)
    assert cancelled.status == "cancelled" or cancelled.cancel_requested
    assert client.wait(job.id, timeout=60).status == "cancelled"
    with pytest.raises(Conflict) as e:
        client.download(job.id, tmp_path / "x.mp4")
    assert e.value.status == 409
    finished = client.wait(ahead.id, timeout=120)
    assert finished.status == "succeeded"
    client.delete(ahead.id)
    with pytest.raises(NotFound):
        client.download(ahead.id, tmp_path / "gone.mp4")


def test_steer_a_queued_job_and_a_batch_from_the_client(client):
    """pause_job / resume_job / change_job and submit_batch / batch / control_batch against the server."""
    ahead = client.submit("keeps the worker busy", **{**SMALL, "num_inference_steps": 150})
    held = client.submit("held back", **SMALL)  # queued behind it (one worker)
    assert client.pause_job(held.id).status == "paused"
    assert client.change_job(held.id, priority=5).priority == 5, "a paused queued job can still be changed"
    batch = client.submit_batch([{"prompt": "one", **SMALL}, {"prompt": "two", **SMALL}], idempotency_key="b-1")
    assert (batch.total, len(batch.job_ids)) == (2, 2)
    assert client.submit_batch([{"prompt": "one", **SMALL}, {"prompt": "two", **SMALL}],
                               idempotency_key="b-1").id == batch.id, "the same key: the same batch"
    paused = client.control_batch(batch.id, "pause")
    assert paused.changed == 2 and paused.counts.get("paused") == 2, paused
    with pytest.raises(InvalidRequest) as bad:
        client.submit_batch([{"prompt": "ok", **SMALL}, {"prompt": "bad", **{**SMALL, "width": 33}}])
    assert bad.value.status == 422 and "nearest valid: 32" in str(bad.value)
    partial = client.submit_batch([{"prompt": "ok", **SMALL}, {"prompt": "bad", **{**SMALL, "width": 33}}],
                                  partial=True)
    assert partial.total == 1 and [(i.line, i.field) for i in partial.invalid] == [(2, "width")]
    client.control_batch(partial.id, "cancel")

    assert client.wait(ahead.id, timeout=180).status == "succeeded"
    with pytest.raises(Conflict) as e:
        client.change_job(ahead.id, prompt="too late")
    assert e.value.status == 409 and e.value.field == "prompt"
    with pytest.raises(Conflict) as e:
        client.pause_job(ahead.id)
    assert e.value.field == "status" and "only a queued or running job can be paused" in str(e.value)
    assert client.get(held.id).status == "paused" and client.batch(batch.id).counts.get("paused") == 2
    assert client.resume_job(held.id).status == "queued"
    assert client.control_batch(batch.id, "resume").changed == 2
    assert client.wait(held.id, timeout=120).status == "succeeded"
    assert all(client.wait(j, timeout=120).status == "succeeded" for j in batch.job_ids)
    assert {k: n for k, n in client.batch(batch.id).counts.items() if n} == {"succeeded": 2}


def test_image_upload_multipart_and_asset(client, tiny_i2v, tiny_model):
    data = png(40, 24)
    asset = client.upload(data)
    assert client.get_asset(asset.id).sha256 == hashlib.sha256(data).hexdigest()
    assert client.asset_bytes(asset.id) == data
    by_file = client.submit("a cat turns", image=data, model=str(tiny_i2v), **I2V)  # multipart
    stored = client.get_asset(by_file.request["image"])
    assert stored.sha256 == asset.sha256 and stored.id != asset.id
    by_id = client.submit("a cat turns", image_id=asset.id, model=str(tiny_i2v), **I2V)
    assert by_id.request["image"] == asset.id
    for job in (by_file, by_id):
        client.delete(job.id)
    with pytest.raises(InvalidRequest) as e:  # a text-to-video model: refused, naming the field
        client.submit("a cat", image=data, model=str(tiny_model), **I2V)
    assert e.value.field == "image"
    client.delete_asset(asset.id)
    with pytest.raises(NotFound):
        client.get_asset(asset.id)
    with pytest.raises(NotFound):
        client.asset_bytes(asset.id)


def test_error_mapping(server, client):
    with pytest.raises(InvalidRequest) as e:
        client.submit("bad", num_frames=0)
    assert e.value.field == "num_frames" and e.value.status == 422
    assert isinstance(e.value, lib_errors.InvalidRequest)
    with pytest.raises(InvalidRequest) as e:
        client.list(status="bogus")
    assert e.value.field == "status"
    with pytest.raises(NotFound) as e:
        client.get("no-such-job")
    assert isinstance(e.value, lib_errors.JobNotFound)
    for key in (None, "t2v_wrong"):
        with Client(server.url, key) as anonymous, pytest.raises(Unauthorized) as e:
            anonymous.models()
        assert e.value.status == 401


def test_rate_limit_from_the_server(server):
    with Client(server.url, server.slow_key, retries=0) as c:
        c.models()  # the one request per hour
        with pytest.raises(RateLimited) as e:
            c.models()
    assert e.value.retry_after and e.value.retry_after > 0
    assert isinstance(e.value, lib_errors.QuotaExceeded)


def scripted(statuses, seen):
    """A transport answering ``statuses`` in turn (429/503 with Retry-After: 2), recording each request."""
    answers = iter(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = next(answers)
        if status >= 400:
            return httpx.Response(status, json={"detail": "slow down"}, headers={"Retry-After": "2"})
        return httpx.Response(status, json={"id": "j1", "status": "queued"})

    return httpx.MockTransport(handle)


def test_retries_honour_retry_after():
    seen, waits = [], []
    with Client("http://t2v.test", "k", transport=scripted([429, 503, 200], seen)) as c:
        c.sleep = waits.append
        assert c.get("j1").id == "j1"
    assert waits == [2.0, 2.0] and len(seen) == 3
    assert seen[0].headers["authorization"] == "Bearer k"


def test_submit_retries_only_with_an_idempotency_key():
    seen, waits = [], []
    with Client("http://t2v.test", transport=scripted([429, 202], seen)) as c:
        c.sleep = waits.append
        with pytest.raises(RateLimited):
            c.submit("once")
        assert len(seen) == 1 and waits == []
    seen.clear()
    with Client("http://t2v.test", transport=scripted([429, 202], seen)) as c:
        c.sleep = waits.append
        assert c.submit("twice", idempotency_key="abc").id == "j1"
    assert len(seen) == 2 and waits == [2.0]


def test_retries_give_up():
    seen, waits = [], []
    with Client("http://t2v.test", retries=2, transport=scripted([503] * 5, seen)) as c:
        c.sleep = waits.append
        with pytest.raises(ServerUnavailable) as e:
            c.get("j1")
    assert len(seen) == 3 and waits == [2.0, 2.0] and e.value.retry_after == 2.0


def test_async_client(server, done_job, tmp_path):
    async def main():
        async with AsyncClient(server.url, server.key) as c:
            job = await c.submit("async panda", **SMALL)
            events = [e async for e in c.events(job.id)]
            assert events[-1].event == "succeeded"
            final = await c.wait(job.id)
            assert final.status == "succeeded"
            assert [j.id async for j in c.search("async panda")] == [job.id]
            path = await c.download(job.id, tmp_path / "a.mp4")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == final.file("mp4").sha256
            assert (await c.models()).default == server.name
            with pytest.raises(NotFound):
                await c.get("missing")
            assert (await c.cancel(job.id)).status == "succeeded"  # finished: unchanged
            assert (await c.delete(job.id)).status == "succeeded"  # its last state
            with pytest.raises(NotFound):  # removed: files and record
                await c.get(job.id)
            data = png(24, 16)
            asset = await c.upload(data)
            assert await c.asset_bytes(asset.id) == data

    asyncio.run(main())


def test_cli_jobs_and_history_with_server(server, done_job):
    """`t2v jobs list|show|cancel` and `t2v history` with --server ask the server through t2v.client."""
    import json

    from typer.testing import CliRunner

    from t2v.cli import app

    remote = ["--server", server.url, "--key", server.key]
    r = CliRunner().invoke(app, ["history", *remote, "--json"])
    assert r.exit_code == 0, r.output
    assert done_job.id in {j["id"] for j in json.loads(r.output)}
    r = CliRunner().invoke(app, ["jobs", "list", *remote])
    assert r.exit_code == 0 and done_job.id[:8] in r.output, r.output
    r = CliRunner().invoke(app, ["jobs", "show", done_job.id, *remote])
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "succeeded"
    r = CliRunner().invoke(app, ["jobs", "cancel", done_job.id, *remote])
    assert r.exit_code == 0 and "succeeded" in r.output
    r = CliRunner().invoke(app, ["history", "--server", server.url, "--key", "t2v_wrong"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["jobs", "show", "01NOSUCHJ0B000000000000000", *remote])
    assert r.exit_code != 0 and "no job" in r.output + r.stderr
