"""Webhook deliveries go through a bounded pool per process, with a cap per key: a receiver that never answers
holds a few senders, not a thread per job, and the deliveries waiting for a sender stay due in the database
(none is lost)."""

from __future__ import annotations

import socket
import threading
import time

from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from tests.api.conftest import make_settings

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def webhook_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("t2v-webhook"))


def test_a_hanging_receiver_holds_the_keys_share_of_senders_and_nothing_is_lost(tiny_model, tmp_path):
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # accepts connections (the kernel does) and never answers
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"
    settings = make_settings(tmp_path / "home", tiny_model, webhook_allow="127.0.0.1", webhook_workers=3,
                             webhook_per_key=2, webhook_timeout_s=1.0, webhook_retries=1)
    before = webhook_threads()
    service = build_services(settings, no_workers=True)  # no job runs: each is cancelled while queued
    app = create_app(settings, service=service)
    with TestClient(app) as client:
        ids = [client.post("/v1/videos", json={"prompt": f"a dog {i}", **SMALL, "callback_url": url}).json()["id"]
               for i in range(12)]
        for job_id in ids:  # each cancel fires its webhook
            assert client.delete(f"/v1/videos/{job_id}").status_code in (200, 202, 204)
        peak_busy = peak_threads = 0
        deadline = time.time() + 3
        while time.time() < deadline:
            peak_busy = max(peak_busy, service.webhooks.in_flight())
            peak_threads = max(peak_threads, webhook_threads() - before)
            time.sleep(0.02)
        assert 1 <= peak_busy <= 2 and peak_threads <= 3, (peak_busy, peak_threads)
        states = [client.get(f"/v1/videos/{i}").json()["webhook"]["status"] for i in ids]
        assert sum(s in (None, "pending") for s in states) >= 6, states  # due, waiting in the database for a sender
        hang.close()  # the receiver goes away: every delivery now fails fast, and each one ends
        deadline = time.time() + 90
        while time.time() < deadline:
            states = [client.get(f"/v1/videos/{i}").json()["webhook"]["status"] for i in ids]
            if all(s == "failed" for s in states):
                break
            time.sleep(0.2)
        assert states == ["failed"] * 12, states
        assert max(webhook_threads() - before, 0) <= 3
