"""A server without API keys keeps to its own machine's users, browsers included (t2v.api.origin): cross-site
changes (CSRF from any web page) and, on a loopback server, foreign Host names (DNS rebinding) are refused."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service.keys import create_key

FORM = {"request": json.dumps({"prompt": "queued by a web page", "num_inference_steps": 1})}


def test_cross_site_changes_are_refused_without_keys_and_pass_with_them(settings):
    app = create_app(settings, start_workers=False)
    with TestClient(app) as client:
        service = app.state.service
        for origin in ("https://evil.example", "null", "http://testserver.evil.example"):
            r = client.post("/v1/videos", data=FORM, headers={"Origin": origin})  # a form: no CORS preflight
            assert r.status_code == 403 and "cross-site request refused" in r.json()["detail"], r.text
            assert client.delete("/v1/videos/01NOSUCHJ0B000000000000000", headers={"Origin": origin}).status_code == 403
        assert service.list() == []
        assert client.get("/v1/videos", headers={"Origin": "https://evil.example"}).status_code == 200  # reads pass
        assert client.post("/v1/videos", data=FORM, headers={"Origin": "http://testserver"}).status_code == 202
        assert client.post("/v1/videos", data=FORM).status_code == 202  # the CLI, curl: no Origin
        assert len(service.list()) == 2

        _, key = create_key(service.repo.keys, "alice")  # with keys a request needs one, which a web page cannot send
        r = client.post("/v1/videos", data=FORM, headers={"Origin": "https://evil.example"})
        assert r.status_code == 401
        r = client.post("/v1/videos", data=FORM, headers={"Origin": "https://app.example", "Authorization": f"Bearer {key}"})
        assert r.status_code == 202  # a page of another site that holds a key (a front end of the user's own)


def test_a_loopback_server_without_keys_answers_only_loopback_host_names(settings):
    app = create_app(settings, start_workers=False, loopback_hosts=True)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        for host in ("127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:8000", "127.0.0.2"):
            assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
        for host in ("attacker.example", "attacker.example:8000", "localhost.attacker.example", "10.0.0.1:8000", ""):
            r = client.get("/v1/videos", headers={"Host": host})
            assert r.status_code == 400 and "loopback" in r.json()["detail"], (host, r.text)
        _, key = create_key(app.state.service.repo.keys, "alice")  # keys on: a proxy may pass its public name
        r = client.get("/v1/videos", headers={"Host": "t2v.example.org", "Authorization": f"Bearer {key}"})
        assert r.status_code == 200
