"""API keys, rate limits, quotas and signed webhooks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service.keys import create_key
from standardwebhooks import Webhook, WebhookVerificationError

from t2v.service.webhooks import DELIVERY_ERROR, ID_HEADER, signer, webhook_secret
from tests.api.conftest import SMALL, wait_for


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings(settings):
    """The shared settings, letting webhooks reach this test's loopback receiver (refused by default)."""
    return settings.model_copy(update={"webhook_allow": "127.0.0.1"})


@pytest.fixture
def keyed(settings):
    app = create_app(settings, start_workers=False)
    repo = app.state.service.repo
    a, key_a = create_key(repo.keys, "alice", rate="3/minute")
    _, key_b = create_key(repo.keys, "bob", max_queued=1)
    with TestClient(app) as client:
        yield client, key_a, key_b, repo, a


def test_keys_required_once_any_exist(keyed):
    client, key_a, key_b, repo, _ = keyed
    body = {"prompt": "a cat", **SMALL}
    assert client.post("/v1/videos", json=body).status_code == 401
    assert client.post("/v1/videos", json=body, headers=bearer("t2v_wrong")).status_code == 401
    r = client.post("/v1/videos", json=body, headers=bearer(key_b))
    assert r.status_code == 202
    job_id = r.json()["id"]
    # Another key's job: 404 everywhere, worded as a missing job (ids cannot be probed); its own key sees it.
    for r in (client.get(f"/v1/videos/{job_id}", headers=bearer(key_a)),
              client.delete(f"/v1/videos/{job_id}", headers=bearer(key_a))):
        assert r.status_code == 404 and r.json()["detail"] == f"no job with id {job_id}"
    assert client.get(f"/v1/videos/{job_id}", headers=bearer(key_b)).status_code == 200
    assert client.get("/v1/videos", headers=bearer(key_a)).json()["items"] == []
    assert client.get("/healthz").status_code == 200  # health stays open


def test_quota_on_queued_jobs(keyed):
    client, _, key_b, _, _ = keyed
    body = {"prompt": "a cat", **SMALL}
    assert client.post("/v1/videos", json=body, headers=bearer(key_b)).status_code == 202
    r = client.post("/v1/videos", json=body, headers=bearer(key_b))
    assert r.status_code == 429 and "queued" in r.json()["detail"] and "retry-after" in r.headers
    # A retried request with an idempotency key still gets its job back at the quota.
    first = client.post("/v1/videos", json={**body, "idempotency_key": "k1"}, headers=bearer(key_b))
    assert first.status_code == 429
    client.delete(f"/v1/videos/{client.get('/v1/videos', headers=bearer(key_b)).json()['items'][0]['id']}",
                  headers=bearer(key_b))
    made = client.post("/v1/videos", json={**body, "idempotency_key": "k1"}, headers=bearer(key_b))
    again = client.post("/v1/videos", json={**body, "idempotency_key": "k1"}, headers=bearer(key_b))
    assert made.status_code == 202 and again.status_code == 200 and again.json()["id"] == made.json()["id"]


def test_rate_limit_429_with_retry_after(keyed):
    client, key_a, _, _, _ = keyed
    codes = [client.get("/v1/videos", headers=bearer(key_a)).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = client.get("/v1/videos", headers=bearer(key_a))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_revoked_key_is_refused(keyed):
    client, key_a, _, repo, a = keyed
    assert repo.keys.revoke_key(a.id)
    assert client.get("/v1/videos", headers=bearer(key_a)).status_code == 401


def test_revoking_a_key_ends_its_open_event_streams_and_cancels_its_unfinished_jobs(keyed, monkeypatch):
    from t2v.api.streams import StreamLease

    client, _, _, repo, _ = keyed
    service = client.app.state.service
    erin, erin_token = create_key(repo.keys, "erin")
    carol, carol_token = create_key(repo.keys, "carol")
    _, dave_token = create_key(repo.keys, "dave")

    def submit(token, prompt):
        return client.post("/v1/videos", json={"prompt": prompt, **SMALL}, headers=bearer(token)).json()["id"]

    erin_running = submit(erin_token, "erin, running")
    assert repo.claims.claim_next("a-worker").id == erin_running  # as a worker would take it
    erin_queued, carol_job, dave_job = submit(erin_token, "erin"), submit(carol_token, "carol"), submit(dave_token, "dave")

    monkeypatch.setattr(StreamLease, "RENEW_S", 0.2)  # the key is checked again at each renewal
    with client.stream("GET", f"/v1/videos/{carol_job}/events", headers=bearer(carol_token)) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("event: progress")
        repo.keys.revoke_key(carol.id)  # revoked by another process (the CLI): this server's open stream ends
        data = [line for line in lines if line.startswith("data:")]
        assert json.loads(data[-1][5:]) == {"detail": "the API key was revoked"}

    assert service.access.revoke_key(erin.id) is True and service.access.revoke_key(erin.id) is False
    assert repo.get_job(erin_queued).status == "cancelled"
    running = repo.get_job(erin_running)
    assert running.status == "running" and running.cancel_requested  # its worker stops it at its next check
    assert repo.get_job(dave_job).status == "queued"  # another key's job is left alone


class Receiver(BaseHTTPRequestHandler):
    calls: list = []
    fail_first = 1

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        Receiver.calls.append((body, dict(self.headers), self.headers.get(ID_HEADER)))
        code = 500 if len(Receiver.calls) <= Receiver.fail_first else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


def webhook_state(client, job_id, wanted, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        state = client.get(f"/v1/videos/{job_id}").json()["webhook"]
        if state["status"] == wanted or time.time() > deadline:
            return state
        time.sleep(0.1)


def test_webhook_signed_and_retried(client, settings):
    Receiver.calls = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        job = client.post("/v1/videos", json={"prompt": "a dog", **SMALL, "callback_url": url}).json()
        wait_for(client, job["id"])
        state = webhook_state(client, job["id"], "delivered")
        assert state["status"] == "delivered" and state["attempts"] == 2
        assert len(Receiver.calls) == 2
        body, headers, delivery = Receiver.calls[-1]
        assert delivery == Receiver.calls[0][2] == job["id"]  # one webhook-id across its retries
        assert signer(webhook_secret(settings)).verify(body, headers)["id"] == job["id"]  # keyless: the server's secret
        with pytest.raises(WebhookVerificationError):
            Webhook(b"wrong-secret").verify(body, headers)
        assert "X-T2V-Signature" not in headers  # the legacy header only with T2V_WEBHOOK_LEGACY_SIGNATURE
        payload = json.loads(body)
        assert payload["id"] == job["id"] and payload["status"] == "succeeded"
    finally:
        server.shutdown()


def test_webhook_failures_recorded_without_blocking_queue(client):
    job = client.post("/v1/videos", json={"prompt": "a dog", **SMALL, "callback_url": "http://127.0.0.1:9/none"}).json()
    second = client.post("/v1/videos", json={"prompt": "a fox", **SMALL}).json()
    assert wait_for(client, second["id"])["status"] == "succeeded"
    hook = webhook_state(client, job["id"], "failed")
    assert hook["status"] == "failed" and hook["attempts"] == 4 and hook["error"] == DELIVERY_ERROR  # no "refused"
