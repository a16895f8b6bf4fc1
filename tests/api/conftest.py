from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.settings import Settings

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def make_settings(home, model, **kw) -> Settings:
    base = dict(home=home, default_model=str(model), checkpoint_every=1, heartbeat_s=0.2, stale_after_s=2.0,
                webhook_backoff_s=0.2, webhook_retries=3, retry_pause_s=0.05)
    base.update(kw)
    return Settings(**base)


@pytest.fixture(scope="package")
def real_server(tiny_model, tmp_path_factory):
    """One real ``t2v serve`` (no keys, the tiny model) shared by the tests in tests/api that need a plain one:
    each looks only at its own jobs, so one start (~9 s of imports) serves them all."""
    from tests.api.test_server import Server

    env = {"T2V_MODEL_ROOTS": str(tmp_path_factory.getbasetemp()), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1"}
    s = Server(tmp_path_factory.mktemp("real-server") / "home", tiny_model, extra_env=env).start()
    yield s
    s.stop()


@pytest.fixture
def settings(tiny_model, tmp_path):
    return make_settings(tmp_path / "home", tiny_model)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def idle_client(settings):
    """An app whose workers never start: jobs stay queued."""
    with TestClient(create_app(settings, start_workers=False)) as c:
        yield c


def wait_for(client, job_id, statuses=("succeeded", "failed", "cancelled"), timeout=120.0, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/videos/{job_id}", headers=headers or {}).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")


class Receiver:
    """A threaded HTTP(S) server on 127.0.0.1 that records every request it gets."""

    def __init__(self, status: int = 200, delay_s: float = 0.0, tls: ssl.SSLContext | None = None) -> None:
        self.calls: list[dict] = []
        self.server_names: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append({"body": body, "headers": dict(self.headers), "path": self.path})
                time.sleep(delay_s)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
