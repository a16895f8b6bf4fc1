"""Every request body over T2V_MAX_BODY_BYTES gets 413: declared with Content-Length or streamed chunked."""

from __future__ import annotations

import json

import httpx
import pytest

BIG = json.dumps({"prompt": "a" * 100_000}).encode()  # over the 64 KiB default


def chunks(data: bytes, size: int = 8192):
    """A body sent in pieces with Transfer-Encoding: chunked (no Content-Length)."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_chunked_body_over_the_limit_is_413(idle_client):
    r = idle_client.post("/v1/videos", content=chunks(BIG), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": "request body too large"}
    declared = idle_client.post("/v1/videos", content=BIG, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert idle_client.get("/v1/videos").json()["items"] == []  # nothing was queued


def test_chunked_body_under_the_limit_reaches_the_route(idle_client):
    body = json.dumps({"prompt": "a cat", "num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}).encode()
    r = idle_client.post("/v1/videos", content=chunks(body, 7), headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    bad = idle_client.post("/v1/videos", content=chunks(b'{"prompt": "a", "width": 52}', 5),
                           headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "width" in bad.text  # the body arrives whole: its own errors, not 400


@pytest.mark.slow
def test_chunked_body_over_the_limit_is_413_on_a_real_server(real_server):
    from tests.api.test_server import all_jobs

    server = real_server  # (shared: other tests' jobs may be listed; this one must add none)
    before = [j["id"] for j in all_jobs(server)]
    with httpx.Client(timeout=60) as client:
        r = client.post(f"{server.url}/v1/videos", content=chunks(BIG), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.request.headers.get("transfer-encoding") == "chunked"
        assert client.get(f"{server.url}/healthz").status_code == 200  # the server took no harm
    assert [j["id"] for j in all_jobs(server)] == before  # nothing was queued
