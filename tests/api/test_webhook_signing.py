"""Per-key webhook signing in the Standard Webhooks format: each key's receiver accepts only its own key's jobs,
a rotation overlaps, the legacy header only on request.

Real deliveries to a loopback receiver, checked with the ``standardwebhooks`` library as a receiver would.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook, WebhookVerificationError

from t2v.api import create_app
from t2v.store.keys import api_keys
from t2v.service.webhooks import ID_HEADER, SIGNATURE_HEADER, STANDARD_SIGNATURE_HEADER, TIMESTAMP_HEADER, verify, webhook_secret
from tests.api.conftest import SMALL, Receiver, make_settings, wait_for


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def delivered(receiver, job_id, count=1, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        calls = [c for c in receiver.calls if c["headers"].get(ID_HEADER) == job_id]
        if len(calls) >= count:
            return calls
        time.sleep(0.05)
    raise AssertionError(f"no webhook for {job_id} in {timeout} s")


def submit(client, key, url, prompt="a dog"):
    r = client.post("/v1/videos", json={"prompt": prompt, **SMALL, "callback_url": url},
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_each_key_signs_with_its_own_secret_and_a_receiver_refuses_other_keys_jobs(tiny_model, tmp_path, receiver):
    settings = make_settings(tmp_path / "home", tiny_model, webhook_allow="127.0.0.1")
    app = create_app(settings)
    service = app.state.service
    alice, key_a = service.access.create_key("alice")
    bob, key_b = service.access.create_key("bob")
    assert alice.webhook_secret.startswith("whsec_") and alice.webhook_secret != bob.webhook_secret
    assert alice.webhook_secret not in repr(alice)  # a printed row shows no secret
    url = f"http://127.0.0.1:{receiver.port}/hook"
    with TestClient(app) as client:
        job_a, job_b = submit(client, key_a, url), submit(client, key_b, url, "a fox")
        for job in (job_a, job_b):
            wait_for(client, job, headers={"Authorization": f"Bearer {key_a if job == job_a else key_b}"})
        (call_a,), (call_b,) = delivered(receiver, job_a), delivered(receiver, job_b)
    # Bob's receiver verifies with Bob's secret: it accepts his job and refuses Alice's genuinely signed one.
    assert Webhook(bob.webhook_secret).verify(call_b["body"], call_b["headers"])["id"] == job_b
    with pytest.raises(WebhookVerificationError):
        Webhook(bob.webhook_secret).verify(call_a["body"], call_a["headers"])
    assert Webhook(alice.webhook_secret).verify(call_a["body"], call_a["headers"])["id"] == job_a
    with pytest.raises(WebhookVerificationError):  # nor the server's own secret
        Webhook(webhook_secret(settings)).verify(call_a["body"], call_a["headers"])
    payload = json.loads(call_a["body"])
    assert payload["id"] == job_a and key_b not in call_a["body"].decode() and bob.id not in call_a["body"].decode()
    assert SIGNATURE_HEADER not in call_a["headers"]
    # A captured delivery replayed later than the receiver's tolerance (5 minutes) is refused.
    old = dict(call_b["headers"], **{TIMESTAMP_HEADER: str(int(time.time()) - 600)})
    with pytest.raises(WebhookVerificationError):
        Webhook(bob.webhook_secret).verify(call_b["body"], old)


def test_a_rotated_secret_overlaps_then_only_the_new_one_signs(tiny_model, tmp_path, receiver):
    settings = make_settings(tmp_path / "home", tiny_model, webhook_allow="127.0.0.1")
    app = create_app(settings)
    service = app.state.service
    row, key = service.access.create_key("alice")
    old = row.webhook_secret
    new = service.access.rotate_webhook_secret(row.id, overlap_s=3600)
    assert new.startswith("whsec_") and new != old
    stored = service.repo.keys.get_key(row.id)
    assert stored.webhook_secret == new and stored.webhook_secret_previous == old
    url = f"http://127.0.0.1:{receiver.port}/hook"
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        during = submit(client, key, url)
        wait_for(client, during, headers=auth)
        (call,) = delivered(receiver, during)
        assert len(call["headers"][STANDARD_SIGNATURE_HEADER].split(" ")) == 2  # old and new sign in the overlap
        for secret in (old, new):
            assert Webhook(secret).verify(call["body"], call["headers"])["id"] == during
        # The overlap ends (as if an hour had passed): only the new secret signs.
        with service.repo.db.write() as conn:
            conn.execute(api_keys.update().where(api_keys.c.id == row.id).values(
                webhook_previous_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
        after = submit(client, key, url, "a fox")
        wait_for(client, after, headers=auth)
        (call,) = delivered(receiver, after)
    assert len(call["headers"][STANDARD_SIGNATURE_HEADER].split(" ")) == 1
    assert Webhook(new).verify(call["body"], call["headers"])["id"] == after
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(call["body"], call["headers"])


def test_the_legacy_header_is_sent_only_when_asked_for(tiny_model, tmp_path, receiver):
    settings = make_settings(tmp_path / "home", tiny_model, webhook_allow="127.0.0.1", webhook_legacy_signature=True)
    url = f"http://127.0.0.1:{receiver.port}/hook"
    with TestClient(create_app(settings)) as client:
        job = client.post("/v1/videos", json={"prompt": "a dog", **SMALL, "callback_url": url}).json()["id"]
        wait_for(client, job)
        (call,) = delivered(receiver, job)
    assert verify(webhook_secret(settings), call["body"], call["headers"][SIGNATURE_HEADER])
    assert Webhook(webhook_secret(settings)).verify(call["body"], call["headers"])["id"] == job  # and the standard ones


def test_keys_made_before_per_key_secrets_sign_with_the_servers_until_rotated(tiny_model, tmp_path, receiver):
    settings = make_settings(tmp_path / "home", tiny_model, webhook_allow="127.0.0.1")
    app = create_app(settings)
    service = app.state.service
    row, key = service.access.create_key("old")
    with service.repo.db.write() as conn:  # as a key made by an earlier version has it (migration 0005)
        conn.execute(api_keys.update().where(api_keys.c.id == row.id).values(webhook_secret=None))
    url = f"http://127.0.0.1:{receiver.port}/hook"
    with TestClient(app) as client:
        job = submit(client, key, url)
        wait_for(client, job, headers={"Authorization": f"Bearer {key}"})
        (call,) = delivered(receiver, job)
    assert Webhook(webhook_secret(settings)).verify(call["body"], call["headers"])["id"] == job
    new = service.access.rotate_webhook_secret(row.id, overlap_s=3600)
    assert service.repo.keys.get_key(row.id).signing_secrets(datetime.now(timezone.utc)) == [new]  # nothing to overlap
