"""CORS is off unless origins are named; T2V_PUBLIC_URL writes the links and, with T2V_TRUSTED_HOSTS, checks Host.

A real app with the web page mounted (Gradio brings a CORS middleware of its own that must stay out), keys on.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from t2v.service.keys import create_key
from tests.api.conftest import SMALL, make_settings

pytest.importorskip("gradio")

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


def page(tiny_model, tmp_path, monkeypatch, **settings):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model, **settings))
    _, key = create_key(service.repo.keys, "alice")
    return TestClient(mount_ui(create_app(service.settings, service=service, start_workers=False), service,
                               required=True)), key


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8080", "https://evil.example", "null"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "t2v.example.com"])
def test_no_cors_headers_by_default_on_any_route(tiny_model, tmp_path, monkeypatch, origin, host):
    client, key = page(tiny_model, tmp_path, monkeypatch)
    with client:
        for path in ("/v1/videos", "/gradio_api/queue/join", "/config", "/healthz"):
            pre = client.options(path, headers={**PREFLIGHT, "Origin": origin, "Host": host})
            assert "access-control-allow-origin" not in pre.headers, (path, pre.headers)
            assert "access-control-allow-credentials" not in pre.headers, (path, pre.headers)
            simple = client.get(path, headers={"Origin": origin, "Host": host, "Authorization": f"Bearer {key}"})
            assert "access-control-allow-origin" not in simple.headers, (path, simple.headers)


def test_named_origins_get_cors_and_others_do_not(tiny_model, tmp_path, monkeypatch):
    client, key = page(tiny_model, tmp_path, monkeypatch, cors_origins="https://app.example.com")
    with client:
        ok = client.options("/v1/videos", headers={**PREFLIGHT, "Origin": "https://app.example.com"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in ok.headers  # keys travel in a header, never cookies
        other = client.options("/v1/videos", headers={**PREFLIGHT, "Origin": "http://localhost:3000"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        listed = client.get("/v1/videos", headers={"Origin": "https://app.example.com", "Authorization": f"Bearer {key}"})
        assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == "https://app.example.com"


def test_public_url_writes_the_links_and_other_hosts_get_400(tiny_model, tmp_path, monkeypatch):
    client, key = page(tiny_model, tmp_path, monkeypatch, public_url="https://t2v.example.com/",
                       trusted_hosts="t2v.internal")
    auth = {"Authorization": f"Bearer {key}"}
    with client:
        r = client.post("/v1/videos", json={"prompt": "a dog", **SMALL}, headers={**auth, "Host": "evil.example"})
        assert r.status_code == 400
        assert client.app.state.service.repo.count_jobs() == 0  # refused before anything was queued
        for host in ("t2v.example.com", "t2v.internal:8000", "127.0.0.1:8000"):
            r = client.post("/v1/videos", json={"prompt": "a dog", **SMALL}, headers={**auth, "Host": host})
            assert r.status_code == 202, (host, r.text)
            job = r.json()
            assert r.headers["location"] == f"https://t2v.example.com/v1/videos/{job['id']}"
            assert all(v.startswith("https://t2v.example.com/v1/videos/") for v in job["links"].values())
        assert client.get("/config", headers={"Host": "evil.example"}).status_code == 400  # the page too


def test_without_public_url_the_links_follow_the_host_the_request_was_sent_to(tiny_model, tmp_path, monkeypatch):
    client, key = page(tiny_model, tmp_path, monkeypatch)
    with client:
        r = client.post("/v1/videos", json={"prompt": "a dog", **SMALL},
                        headers={"Authorization": f"Bearer {key}", "Host": "127.0.0.1:8123"})
        assert r.status_code == 202 and r.headers["location"].startswith("http://127.0.0.1:8123/v1/videos/")
