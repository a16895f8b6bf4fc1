"""With API keys on, a job's files, previews and records reach only the key that made the job.

A real app (REST API + the web page mounted, as `t2v serve` runs it) with two keys: alice owns the jobs,
bob is another key. Every route that serves files, Gradio's included, is tried with no key, with bob's
key and with alice's; the public endpoints are read while a job runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from t2v.service.keys import create_key
from tests.api.conftest import SMALL, make_settings, wait_for

gr = pytest.importorskip("gradio")
from gradio.utils import get_upload_folder  # noqa: E402  (Gradio's cache folder: where the page's copies go)

SEQUENCE = {"keyframes": ["0: a red circle", "1: a blue square"], "width": 32, "height": 32, "num_inference_steps": 2,
            "seed": 3, "fps": 6, "contact_sheet": True, "denoise_grid": [1, 2]}
PROMPT = "a secret purple giraffe"


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture(scope="module")
def keyed(tiny_model, tiny_sd_model, tmp_path_factory):
    """(client, alice, bob, service, video job, sequence job): both jobs alice's, finished."""
    from t2v.ui import mount_ui

    tmp = tmp_path_factory.mktemp("private-files")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp / "gradio"))  # read when the page is built: this app's own cache
        settings = make_settings(tmp / "home", tiny_model, default_image_model=str(tiny_sd_model))
        service = build_services(settings)
        _, alice = create_key(service.repo.keys, "alice")
        _, bob = create_key(service.repo.keys, "bob")
        app = mount_ui(create_app(settings, service=service), service, required=True)
        with TestClient(app) as client:
            video = client.post("/v1/videos", json={"prompt": PROMPT, **SMALL, "formats": ["mp4", "webm", "gif"]},
                                headers=bearer(alice))
            seq = client.post("/v1/sequences", json=SEQUENCE, headers=bearer(alice))
            assert video.status_code == 202 and seq.status_code == 202, (video.text, seq.text)
            jobs = [wait_for(client, r.json()["id"], headers=bearer(alice)) for r in (video, seq)]
            assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], [j["error"] for j in jobs]
            yield client, alice, bob, service, jobs[0], jobs[1]


def test_rest_routes_serve_files_and_records_only_to_the_owning_key(keyed):
    client, alice, bob, _, video, seq = keyed
    routes = [f"/v1/videos/{video['id']}", f"/v1/videos/{video['id']}/metadata", f"/v1/videos/{video['id']}/events",
              f"/v1/videos/{video['id']}/poster",
              *(f"/v1/videos/{video['id']}/content?format={fmt}" for fmt in ("mp4", "webm", "gif")),
              f"/v1/videos/{seq['id']}/content", f"/v1/videos/{seq['id']}/metadata",
              *(f"/v1/videos/{seq['id']}/figures/{name}" for name in ("contact_sheet", "denoise_grid"))]
    missing = client.get("/v1/videos/01NOSUCHJ0B000000000000000/metadata", headers=bearer(bob))
    assert missing.status_code == 404
    for route in routes:
        assert client.get(route).status_code == 401, route
        other = client.get(route, headers=bearer(bob))  # another key: exactly what a missing job answers
        job_id = route.split("/")[3]
        assert other.status_code == 404, route
        assert other.json() == {"detail": f"no job with id {job_id}"}, route
        own = client.get(route, headers=bearer(alice))
        assert own.status_code == 200 and own.content, route
    assert client.delete(f"/v1/videos/{video['id']}", headers=bearer(bob)).status_code == 404
    assert client.get("/v1/videos", headers=bearer(bob)).json()["items"] == []


def _file_urls(path, cache):
    """Ways to ask Gradio's file routes for ``path``: plain, percent-encoded, via the legacy route, and
    climbing out of Gradio's own cache folder."""
    p = str(path)
    climb = "%2e%2e/" * len(Path(cache).parts)  # encoded, so the client sends the dots as they are
    return [f"/gradio_api/file={p}", f"/gradio_api/file={quote(p)}", f"/gradio_api/file/{p}",
            f"/gradio_api/file={cache}/{climb}{p.lstrip('/')}", f"/file={p}", f"/gradio_api/proxy={p}"]


def test_gradio_file_routes_never_serve_t2v_home(keyed):
    client, alice, bob, service, video, seq = keyed
    home = service.settings.home
    files = sorted(p for job in (video, seq) for p in (service.settings.videos_dir / job["id"]).rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"video.mp4", "video.webm", "video.gif", "video.json", "poster.png"} <= names, names
    files += [p for p in home.glob("t2v.db*") if p.is_file()]  # the database: prompts, key hashes
    cache = get_upload_folder()
    for path in files:
        secret = path.read_bytes()[:4096]
        for url in _file_urls(path, cache):
            for token in (None, bob, alice):  # Gradio takes no key: nobody gets a file of T2V_HOME from it
                r = client.get(url, headers=bearer(token))
                assert r.status_code >= 400 and secret not in r.content, (url, r.status_code)


def test_public_endpoints_show_no_job_ids_prompts_or_paths_while_a_job_runs(keyed):
    client, alice, bob, service, video, _ = keyed
    settings = service.settings
    r = client.post("/v1/videos", json={"prompt": PROMPT, "num_frames": 4, "width": 32, "height": 32,
                                        "num_inference_steps": 400}, headers=bearer(alice))
    job_id = r.json()["id"]
    preview = settings.videos_dir / job_id / "preview.png"
    try:
        deadline = time.time() + 120
        while not (preview.is_file() and client.get(f"/v1/videos/{job_id}", headers=bearer(alice)).json()["status"]
                   == "running"):
            assert time.time() < deadline, "the job did not start"
            time.sleep(0.05)
        live = client.get(f"/v1/videos/{job_id}/preview", headers=bearer(alice))  # the running job's preview
        assert live.status_code == 200 and live.headers["content-type"] == "image/png"
        assert live.headers["cache-control"] == "no-store" and live.content.startswith(b"\x89PNG")
        assert client.get(f"/v1/videos/{job_id}/preview", headers=bearer(bob)).status_code == 404
        assert client.get(f"/v1/videos/{job_id}/preview").status_code == 401
        secrets = [job_id, video["id"], PROMPT, str(settings.home), str(settings.default_model)]
        for route in ("/healthz", "/readyz", "/metrics"):
            for token in (None, "t2v_not_a_key"):
                r = client.get(route, headers=bearer(token))
                assert r.status_code == 200, (route, r.text)
                assert not [s for s in secrets if s in r.text], (route, r.text)
        public = client.get("/readyz").json()
        assert public["ready"] is True and public["workers_alive"] == 1 and public["busy_workers"] == 1
        assert set(public) == {"ready", "workers", "workers_alive", "busy_workers", "warm", "checked_at"}
        # With a key: that key's running jobs and their models as the key named them (bob has none).
        mine = client.get("/readyz", headers=bearer(alice)).json()
        assert mine["busy"] == [job_id] and mine["busy_workers"] == 1
        named = client.get(f"/v1/videos/{job_id}", headers=bearer(alice)).json()["request"]["model"]
        assert mine["models_loaded"] == [{"model": named}]
        bobs = client.get("/readyz", headers=bearer(bob)).json()
        assert bobs["busy"] == [] and bobs["models_loaded"] == []  # not alice's model, nor the server's folders
        # The page and Gradio's own public routes: no job id, prompt or T2V_HOME either.
        for route in ("/", "/config", "/gradio_api/info", "/gradio_api/queue/status", "/openapi.json"):
            text = client.get(route).text
            assert not [s for s in secrets[:4] if s in text], route
        cache = get_upload_folder()
        shot = preview.read_bytes()
        for url in _file_urls(preview, cache):
            for token in (None, bob, alice):
                r = client.get(url, headers=bearer(token))
                assert r.status_code >= 400 and shot not in r.content, (url, r.status_code)
    finally:
        client.delete(f"/v1/videos/{job_id}", headers=bearer(alice))
        wait_for(client, job_id, headers=bearer(alice))


def test_uploads_are_refused(keyed):
    from t2v.ui.files import upload_fields

    client, alice, _, _, _, _ = keyed
    before = set(Path(get_upload_folder()).rglob("*"))
    for route in ("/gradio_api/upload", "/gradio_api/process_recording", "/gradio_api/upload/"):
        for token in (None, alice):
            r = client.post(route, files={"files": ("x.txt", b"payload-that-must-not-land", "text/plain")},
                            headers=bearer(token))
            assert 400 <= r.status_code < 500, (route, r.status_code)
    after = set(Path(get_upload_folder()).rglob("*"))
    assert not [p for p in after - before if p.is_file() and b"payload-that-must-not-land" in p.read_bytes()]
    # The page's upload fields are the first and last frames (image-to-video, first-last-frame), the user's own
    # video, the control clips (VACE's control and mask, Wan-Animate's face and background) and reference images;
    # their uploads are guarded (t2v.ui.uploads).
    page = next(r.app.blocks for r in client.app.router.routes if hasattr(getattr(r, "app", None), "blocks"))
    assert upload_fields(gr, page) == ["Image t2v-image", "Image t2v-last-image", "File t2v-source-video",
                                       "File t2v-control-video", "File t2v-mask-video", "File t2v-face-video",
                                       "File t2v-background-video", *(f"Image t2v-reference-{i}" for i in range(1, 5))]
    with gr.Blocks() as other:
        gr.File(label="attachment")
    assert upload_fields(gr, other) == ["File attachment"]
