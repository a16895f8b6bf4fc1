"""/v1/assets and image-to-video submissions: uploads checked, stored per key, named by id, never by path."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from t2v.api import create_app
from t2v.service.keys import create_key
from tests.api.conftest import wait_for

I2V = {"num_frames": 5, "width": 32, "height": 32, "num_inference_steps": 2}


def png(w: int = 32, h: int = 32, seed: int = 0) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def upload(client, data: bytes, name: str = "first.png", token=None, content_type: str = "image/png"):
    return client.post("/v1/assets", files={"file": (name, data, content_type)}, headers=bearer(token))


def loc_field(r) -> str:
    return r.json()["detail"][0]["loc"][-1]


@pytest.fixture(scope="session")
def tiny_i2v(tmp_path_factory):
    """A tiny Wan 2.1 image-to-video model (under the session's model roots)."""
    from tests.tinymodels import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-wan-i2v", family="wan-i2v", seed=0)


@pytest.fixture
def keyed(settings):
    app = create_app(settings, start_workers=False)
    service = app.state.service
    _, alice = create_key(service.repo.keys, "alice")
    bob_row, bob = create_key(service.repo.keys, "bob")
    with TestClient(app) as client:
        yield client, service, alice, bob, bob_row


def test_upload_read_and_delete(idle_client, settings):
    data = png(48, 32)
    r = upload(idle_client, data, "../holiday pic.png")
    assert r.status_code == 201, r.text
    asset = r.json()
    assert r.headers["location"].endswith(f"/v1/assets/{asset['id']}")
    assert asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert (asset["width"], asset["height"], asset["size"], asset["content_type"]) == (48, 32, len(data), "image/png")
    assert asset["filename"] == "holiday pic.png"  # its last path part
    stored = settings.home / "assets" / f"{asset['id']}.png"
    assert stored.read_bytes() == data and not list(stored.parent.glob(".*.part"))
    assert idle_client.get(f"/v1/assets/{asset['id']}").json() == asset
    assert idle_client.delete(f"/v1/assets/{asset['id']}").status_code == 204
    assert not stored.exists()
    for r in (idle_client.get(f"/v1/assets/{asset['id']}"), idle_client.delete(f"/v1/assets/{asset['id']}")):
        assert r.status_code == 404 and r.json()["detail"] == f"no asset with id {asset['id']}"
    for bad in ("%00", "nope", "../../etc/passwd"):
        assert idle_client.get(f"/v1/assets/{bad}").status_code == 404


def test_filenames_are_cleaned():
    from t2v.service.assets import clean_filename

    assert clean_filename("C:\\Users\\me\\a\x00b\ud800.png", "png") == "ab.png"
    assert clean_filename("/etc/.hidden", "jpg") == "hidden"
    assert clean_filename("\x00\n", "webp") == clean_filename(None, "webp") == "image.webp"
    assert len(clean_filename("x" * 1000, "png")) == 200


def test_refused_uploads_are_4xx_and_leave_nothing(idle_client, settings, monkeypatch):
    from t2v import inputs

    gif = io.BytesIO()
    Image.new("RGB", (32, 32)).save(gif, format="GIF")
    cases = {
        "text": (b"hello, not an image", "is not an image"),
        "gif": (gif.getvalue(), "is a GIF image"),
        "tiny": (png(8, 8), "at least 16x16"),
        "truncated": (png()[:200], "damaged or truncated"),
    }
    for name, (data, message) in cases.items():
        r = upload(idle_client, data, f"{name}.png")
        assert r.status_code == 422 and loc_field(r) == "file" and message in r.text, (name, r.text)
    monkeypatch.setattr(inputs, "MAX_IMAGE_BYTES", 1000)
    r = upload(idle_client, png(64, 64))
    assert r.status_code == 422 and "larger than" in r.text
    monkeypatch.undo()
    big = png(256, 256)  # ~200 KB of noise: past the JSON body limit (64 KiB), within the upload limit
    stored = upload(idle_client, big)
    assert len(big) > settings.max_body_bytes and stored.status_code == 201
    assert idle_client.delete(f"/v1/assets/{stored.json()['id']}").status_code == 204
    assert upload(idle_client, b"0" * (settings.max_upload_bytes + 1)).status_code == 413
    assert idle_client.post("/v1/assets", data={"file": "not a file"}).status_code == 422
    assert idle_client.post("/v1/assets", json={"file": "x"}).status_code == 422
    assert not (settings.home / "assets").exists() or not list((settings.home / "assets").iterdir())


def test_a_path_or_unknown_id_in_image_is_422(idle_client):
    for image in ("/etc/passwd", "first.png", "https://example.com/a.png", "../assets/x.png"):
        r = idle_client.post("/v1/videos", json={"prompt": "a cat", "image": image})
        assert r.status_code == 422 and loc_field(r) == "image", r.text
        assert "give an uploaded image's asset id (POST /v1/assets" in r.text and "as `image` in a multipart" in r.text
    r = idle_client.post("/v1/videos", json={"prompt": "a cat", "image": "01ARZ3NDEKTSV4RRFFQ69G5FAV"})
    assert r.status_code == 422 and loc_field(r) == "image" and "no uploaded asset with id" in r.text


def test_keys_see_and_use_only_their_own_assets(keyed, tiny_i2v):
    client, service, alice, bob, bob_row = keyed
    assert upload(client, png()).status_code == 401
    asset = upload(client, png(), token=alice).json()
    for r in (client.get(f"/v1/assets/{asset['id']}", headers=bearer(bob)),
              client.get(f"/v1/assets/{asset['id']}/content", headers=bearer(bob)),
              client.delete(f"/v1/assets/{asset['id']}", headers=bearer(bob))):
        assert r.status_code == 404 and r.json()["detail"] == f"no asset with id {asset['id']}"  # as a missing one
    assert client.get(f"/v1/assets/{asset['id']}/content").status_code == 401
    body = {"prompt": "a cat", "model": str(tiny_i2v), "image": asset["id"], **I2V}
    r = client.post("/v1/videos", json=body, headers=bearer(bob))
    assert r.status_code == 422 and loc_field(r) == "image" and "no uploaded asset" in r.text
    r = client.post("/v1/videos", json=body, headers=bearer(alice))
    assert r.status_code == 202, r.text
    assert r.json()["request"]["image"] == asset["id"]
    # Deleting the job keeps the asset; purging bob's assets leaves alice's.
    service.delete(r.json()["id"])
    assert client.get(f"/v1/assets/{asset['id']}", headers=bearer(alice)).status_code == 200
    upload(client, png(seed=1), token=bob)
    assert service.assets.purge_key_assets(bob_row) == 1
    assert client.get(f"/v1/assets/{asset['id']}", headers=bearer(alice)).status_code == 200
    assert [p.name for p in service.assets.assets_dir.iterdir()] == [f"{asset['id']}.png"]


def test_multipart_video_stores_the_image_as_an_asset_of_the_key(keyed, tiny_i2v, tiny_model):
    client, service, alice, bob, _ = keyed
    data = png(40, 24)
    body = {"prompt": "a cat turns its head", "model": str(tiny_i2v), "seed": 3, **I2V}
    r = client.post("/v1/videos", data={"request": json.dumps(body)}, files={"image": ("cat.png", data, "image/png")},
                    headers=bearer(alice))
    assert r.status_code == 202, r.text
    job = r.json()
    asset_id = job["request"]["image"]
    assert service.repo.get_job(job["id"]).request["image"] == asset_id
    asset = client.get(f"/v1/assets/{asset_id}", headers=bearer(alice)).json()
    assert asset["sha256"] == hashlib.sha256(data).hexdigest() and asset["filename"] == "cat.png"
    assert client.get(f"/v1/assets/{asset_id}", headers=bearer(bob)).status_code == 404
    # Refused: a model without image-to-video, both a file and an id, a path, a bad file. No asset is left behind.
    before = sorted(service.assets.assets_dir.iterdir())
    for request, status, field in (({**body, "model": str(tiny_model)}, 422, "image"),
                                   ({**body, "image": asset_id}, 422, "image"),
                                   ({**body, "width": 33}, 422, "width")):
        r = client.post("/v1/videos", data={"request": json.dumps(request)},
                        files={"image": ("cat.png", data, "image/png")}, headers=bearer(alice))
        assert r.status_code == status and loc_field(r) == field, r.text
    r = client.post("/v1/videos", data={"request": json.dumps(body)}, files={"image": ("x.png", b"nope", "image/png")},
                    headers=bearer(alice))
    assert r.status_code == 422 and loc_field(r) == "image" and "is not an image" in r.text
    r = client.post("/v1/videos", data={"request": "{not json"}, headers=bearer(alice))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "request"]
    r = client.post("/v1/videos", data={"request": json.dumps(body), "extra": "1"}, headers=bearer(alice))
    assert r.status_code == 422 and loc_field(r) == "extra"
    assert sorted(service.assets.assets_dir.iterdir()) == before
    # An idempotent retry returns the first job, which keeps its image; the retry's copy goes.
    first = client.post("/v1/videos", data={"request": json.dumps({**body, "idempotency_key": "k1"})},
                        files={"image": ("cat.png", data, "image/png")}, headers=bearer(alice))
    again = client.post("/v1/videos", data={"request": json.dumps({**body, "idempotency_key": "k1"})},
                        files={"image": ("cat.png", data, "image/png")}, headers=bearer(alice))
    assert (first.status_code, again.status_code) == (202, 200) and again.json()["id"] == first.json()["id"]
    assert len(list(service.assets.assets_dir.iterdir())) == len(before) + 1


def test_openapi_documents_assets_and_the_multipart_body(idle_client):
    spec = idle_client.get("/openapi.json").json()
    assert {"/v1/assets", "/v1/assets/{asset_id}"} <= set(spec["paths"])
    content = spec["paths"]["/v1/videos"]["post"]["requestBody"]["content"]

    def properties(entry):
        return spec["components"]["schemas"][entry["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]

    assert "image" in properties(content["application/json"])
    assert set(properties(content["multipart/form-data"])) == {"request", "image"}


def test_web_page_handlers_store_the_image_once_and_remix_gives_it_back(settings, tiny_i2v, tmp_path):
    from t2v.service import build_services
    from t2v.ui import handlers as H

    service = build_services(settings)
    upload_path = tmp_path / "gradio" / "first.png"
    upload_path.parent.mkdir()
    upload_path.write_bytes(png(seed=5))
    form = {**H.default_form(service), "prompt": "a cat", "model": str(tiny_i2v), "num_frames": 5, "width": 32,
            "height": 32, "num_inference_steps": 2, "scheduler": None}
    first, _ = H.submit(service, form, image=str(upload_path))
    second, _ = H.submit(service, form, image=upload_path)
    ref = service.get(first).request["image"]
    assert service.get(second).request["image"] == ref  # the same picture: the same asset
    assert H.remix_file(service, first).read_bytes() == upload_path.read_bytes()
    assert H.remix_file(service, H.submit(service, {**form, "model": None, "num_frames": 4})[0]) is None
    (tmp_path / "gradio" / "bad.png").write_bytes(b"nope")
    with pytest.raises(H.UIError, match="First frame: .*is not an image"):
        H.submit(service, form, image=tmp_path / "gradio" / "bad.png")
    service.assets.delete_asset(ref)
    assert H.remix_file(service, first) is None


def test_image_to_video_job_runs_and_its_record_keeps_the_image_sha256(client, tiny_i2v):
    data = png(32, 32, seed=9)
    asset = upload(client, data).json()
    r = client.post("/v1/videos", json={"prompt": "a red ball", "model": str(tiny_i2v), "image": asset["id"], **I2V})
    assert r.status_code == 202, r.text
    done = wait_for(client, r.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    meta = client.get(f"/v1/videos/{done['id']}/metadata").json()
    assert meta["image"] == asset["id"] and meta["image_sha256"] == hashlib.sha256(data).hexdigest()


def test_the_page_takes_only_checked_images_and_generates_from_one(tiny_model, tiny_i2v, tmp_path, monkeypatch):
    """Gradio's upload route, guarded: one PNG/JPEG/WebP file or a 4xx; then Generate with it through
    Gradio's queue protocol (as the browser does) queues a job naming an asset with the upload's bytes."""
    pytest.importorskip("gradio")
    from t2v.service import build_services
    from t2v.ui import mount_ui
    from tests.api.conftest import make_settings

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    app = mount_ui(create_app(service.settings, service=service, start_workers=False), service, required=True)
    with TestClient(app) as client:
        for name, data in (("x.txt", b"payload-that-must-not-land"), ("x.png", png()[:300])):
            r = client.post("/gradio_api/upload", files={"files": (name, data, "image/png")})
            assert r.status_code == 415, r.text
        two = [("files", ("a.png", png(), "image/png")), ("files", ("b.png", png(), "image/png"))]
        assert client.post("/gradio_api/upload", files=two).status_code == 400
        assert not [p for p in (tmp_path / "gradio").rglob("*") if p.is_file() and b"payload-that" in p.read_bytes()]
        data = png(32, 32, seed=3)
        r = client.post("/gradio_api/upload", files={"files": ("first.png", data, "image/png")})
        assert r.status_code == 200, r.text
        config = client.get("/config").json()
        elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
        button = next(cid for cid, e in elem.items() if e == "t2v-generate")
        click = next(d for d in config["dependencies"] if [button, "click"] in d["targets"])  # Generate goes off,
        dep = next(d for d in config["dependencies"] if d.get("trigger_after") == click["id"])  # then submits
        values = {"t2v-prompt": "a cat", "t2v-model": str(tiny_i2v), "t2v-frames": 5, "t2v-steps": 2, "t2v-fps": 8,
                  "t2v-guidance": 5, "t2v-width": 32, "t2v-height": 32, "t2v-seed-mode": "random",
                  "t2v-formats": ["mp4"], "t2v-key": "", "t2v-search": "", "t2v-control-scale": 1.0, "t2v-fit": False,
                  "t2v-image": {"path": r.json()[0], "orig_name": "first.png", "meta": {"_type": "gradio.FileData"}}}
        join = {"data": [values.get(elem[c]) for c in dep["inputs"]], "fn_index": dep["id"], "trigger_id": button,
                "session_hash": "s"}
        r = client.post("/gradio_api/queue/join", json=join)
        assert r.status_code == 200, r.text
        with client.stream("GET", "/gradio_api/queue/data?session_hash=s") as stream:
            for line in stream.iter_lines():  # the first answer comes once the job is queued
                if line.startswith("data:") and json.loads(line[5:]).get("msg") in ("process_generating",
                                                                                    "process_completed"):
                    break
        (job,) = service.list()
        assert service.assets.get_asset(job.request["image"])["sha256"] == hashlib.sha256(data).hexdigest()

        # A file value given as a URL is refused before Gradio fetches it (no key was checked yet at that point).
        values["t2v-image"] = {"path": "https://example.com/first.png", "url": "https://example.com/first.png",
                               "orig_name": "first.png", "meta": {"_type": "gradio.FileData"}}
        join = {**join, "data": [values.get(elem[c]) for c in dep["inputs"]], "session_hash": "u"}
        assert client.post("/gradio_api/queue/join", json=join).status_code == 200
        with client.stream("GET", "/gradio_api/queue/data?session_hash=u") as stream:
            done = next(m for line in stream.iter_lines() if line.startswith("data:")
                        and (m := json.loads(line[5:])).get("msg") == "process_completed")
        assert done["success"] is False and "not given as URLs" in json.dumps(done), done
        assert len(service.list()) == 1

        # Uploads stop, answered 503, once those kept in Gradio's cache fill their space.
        from t2v.ui import uploads

        monkeypatch.setattr(uploads, "UPLOAD_SPACE_BYTES", len(data) + 1000)
        r = client.post("/gradio_api/upload", files={"files": ("again.png", png(32, 32, seed=4), "image/png")})
        assert r.status_code == 503 and "full" in r.text


def test_an_assets_bytes_come_back_as_uploaded_with_ranges(idle_client):
    """``GET /v1/assets/{id}/content``: the file as uploaded, its type and name, one byte range (206), 416 past the
    end; a video too; a deleted or unknown id 404."""
    data = png(40, 24, seed=5)
    asset = upload(idle_client, data, "my first frame.png").json()
    r = idle_client.get(f"/v1/assets/{asset['id']}/content")
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "image/png"
    assert hashlib.sha256(r.content).hexdigest() == asset["sha256"] and "filename*=utf-8''my%20first%20frame.png" in r.headers["content-disposition"]
    part = idle_client.get(f"/v1/assets/{asset['id']}/content", headers={"Range": "bytes=8-23"})
    assert part.status_code == 206 and part.content == data[8:24]
    assert idle_client.get(f"/v1/assets/{asset['id']}/content", headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    import av  # a short mp4, uploaded as a video asset

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=8, options={"crf": "30"})
        stream.width = stream.height = 32
        for i in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")))
        out.mux(stream.encode())
    clip = upload(idle_client, buf.getvalue(), "clip.mp4", content_type="video/mp4").json()
    r = idle_client.get(f"/v1/assets/{clip['id']}/content")
    assert r.status_code == 200 and r.content == buf.getvalue() and r.headers["content-type"] == "video/mp4"
    assert idle_client.delete(f"/v1/assets/{asset['id']}").status_code == 204
    for ref in (asset["id"], "01ARZ3NDEKTSV4RRFFQ69G5FAV", "..%2F..%2Fetc%2Fpasswd"):
        assert idle_client.get(f"/v1/assets/{ref}/content").status_code == 404

