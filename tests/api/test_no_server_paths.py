"""No server path in any answer: the server's model folder goes out under its folder name, on every route and on
the web page's public configuration, and a request naming that name runs the folder."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from t2v.service.keys import create_key
from tests.api.conftest import SMALL, make_settings, wait_for

pytest.importorskip("gradio")


def test_the_model_folder_is_named_not_located_on_every_route(tiny_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    _, key = create_key(service.repo.keys, "alice")
    auth = {"Authorization": f"Bearer {key}"}
    secrets = {str(tiny_model), os.path.realpath(tiny_model), str(tmp_path)}
    name = os.path.basename(os.path.realpath(tiny_model))

    def clean(text: str) -> bool:
        return not any(s in text for s in secrets)

    with TestClient(mount_ui(create_app(service.settings, service=service), service, required=True)) as client:
        config = client.get("/config")  # public: no key needed for the page's own configuration
        assert config.status_code == 200 and clean(config.text) and f'"{name}"' in config.text
        job = client.post("/v1/videos", json={"prompt": "a dog", **SMALL}, headers=auth).json()
        named = client.post("/v1/videos", json={"prompt": "a fox", **SMALL, "model": name}, headers=auth)
        assert named.status_code == 202, named.text
        for j in (job["id"], named.json()["id"]):
            done = wait_for(client, j, headers=auth)
            assert done["status"] == "succeeded" and done["request"]["model"] == name
        recorded = client.get(f"/v1/videos/{named.json()['id']}/metadata", headers=auth).json()
        assert recorded["model"] == name and recorded["model_hash"] == client.get(
            f"/v1/videos/{job['id']}/metadata", headers=auth).json()["model_hash"]  # the same folder ran
        for path in (f"/v1/videos/{job['id']}", f"/v1/videos/{job['id']}/metadata", "/v1/videos", "/v1/records",
                     "/v1/models", "/readyz", "/healthz"):
            r = client.get(path, headers=auth)
            assert r.status_code in (200, 503) and clean(r.text), (path, r.text[:500])
        models = client.get("/v1/models", headers=auth).json()
        assert models["default"] == name and models["items"][0]["id"] == name
        made = [f["format"] for f in client.get(f"/v1/videos/{job['id']}", headers=auth).json()["result"]["files"]
                if f["format"] in ("mp4", "webm", "gif")]
        assert "mp4" in made
        for fmt in made:  # the record inside each served file names the folder, not its path
            served = client.get(f"/v1/videos/{job['id']}/content?format={fmt}", headers=auth)
            assert served.status_code == 200 and clean(served.content.decode("latin-1")), fmt
            assert f'"model": "{name}"'.encode() in served.content or f'"model":"{name}"'.encode() in served.content
        events = client.get(f"/v1/videos/{job['id']}/events", headers=auth)
        assert clean(events.text)
