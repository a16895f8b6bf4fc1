"""``wait(timeout=...)`` keeps its deadline when the event stream goes quiet (a job that stays queued), and
``t2v jobs watch`` maps the client's errors. The server here is a tiny real HTTP server on a loopback port
whose event stream never ends: silent, keep-alive comments only, or a few events and then silence."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from t2v.client import AsyncClient, Client
from t2v.client.errors import WaitTimeout
from t2v.errors import InvalidRequest, T2VError

TIMEOUT = 1.5
MARGIN = 10.0  # a correctness bound (the deadline is kept), not a benchmark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queued(job_id: str, position: int = 1) -> dict:
    return {"id": job_id, "status": "queued", "queue_position": position}


class StalledServer:
    """``GET /v1/videos/{id}``: a queued job. ``GET /v1/videos/{id}/events``: an open stream that never
    brings a final event, as ``mode`` says. A request with the key ``bad`` is answered 401."""

    def __init__(self, mode: str) -> None:
        self.mode, self.stop = mode, threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") == "Bearer bad":
                    return self.answer(401, {"detail": "invalid API key"})
                parts = self.path.split("?")[0].strip("/").split("/")  # v1 videos <id> [events]
                if len(parts) == 3:
                    return self.answer(200, queued(parts[2]))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    outer.stream(self.wfile, parts[2])
                except OSError:  # the client went away
                    pass

            def answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stream(self, out, job_id: str) -> None:
        def send(text: str) -> None:
            out.write(text.encode())
            out.flush()

        send(f"event: progress\nid: queued.-.0.5\ndata: {json.dumps(queued(job_id, 5))}\n\n")
        if self.mode == "busy_then_silent":  # events for most of the timeout, then nothing
            for position in range(4, 0, -1):
                time.sleep(0.25)
                send(f"event: progress\nid: queued.-.0.{position}\ndata: {json.dumps(queued(job_id, position))}\n\n")
        while not self.stop.wait(0.2):
            if self.mode == "keepalive":
                send(": keep-alive\n\n")

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["silent", "keepalive", "busy_then_silent"])
def stalled(request):
    server = StalledServer(request.param)
    yield server
    server.close()


def bounded(call, limit: float):
    """Run ``call`` in a daemon thread; (its exception or result, seconds). A call still running after
    ``limit`` seconds fails the test instead of hanging it."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["result"] = e

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting after {limit}s: the deadline was not kept"
    return box["result"], time.monotonic() - start


def test_wait_keeps_its_deadline_on_a_quiet_stream(stalled):
    def call():
        with Client(stalled.url, "k") as c:
            return c.wait("j1", timeout=TIMEOUT, poll_interval=0.2)

    result, elapsed = bounded(call, TIMEOUT + MARGIN)
    assert isinstance(result, WaitTimeout), result
    assert "queued" in str(result)
    assert TIMEOUT <= elapsed < TIMEOUT + MARGIN


def test_async_wait_keeps_its_deadline_on_a_quiet_stream(stalled):
    async def main():
        async with AsyncClient(stalled.url, "k") as c:
            return await c.wait("j1", timeout=TIMEOUT, poll_interval=0.2)

    result, elapsed = bounded(lambda: asyncio.run(main()), TIMEOUT + MARGIN)
    assert isinstance(result, WaitTimeout), result
    assert TIMEOUT <= elapsed < TIMEOUT + MARGIN


def test_events_with_a_timeout_end_by_then():
    server = StalledServer("keepalive")
    try:
        def call():
            with Client(server.url, "k") as c:
                seen = []
                try:
                    for event in c.events("j1", timeout=TIMEOUT):
                        seen.append(event)
                except WaitTimeout:
                    return seen
                return "ended without WaitTimeout"

        seen, elapsed = bounded(call, TIMEOUT + MARGIN)
        assert [e.job.queue_position for e in seen] == [5], seen
        assert TIMEOUT <= elapsed < TIMEOUT + MARGIN
    finally:
        server.close()


def test_watch_maps_the_client_errors():
    from t2v.cli.watch import watch

    server = StalledServer("silent")
    try:
        with pytest.raises(InvalidRequest) as e:
            watch(server.url, "j1", "bad")
        assert e.value.field == "key" and "the server refused the key (check --key)" in str(e.value)
    finally:
        server.close()
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(T2VError) as e:
        watch(nobody, "j1", None)
    assert str(e.value).startswith(f"cannot reach the t2v server at {nobody}")
