"""The web page's uploads (the first frame): with keys on they need the page's key (a same-site cookie the key
box sets), count against it, are re-encoded (a private chunk never lands), are read back only by their key and
are removed minutes after their last use; without keys each client has a cap.

A real app with the page mounted, driven over HTTP as the browser drives it.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from t2v.api import create_app
from t2v.service import build_services
from t2v.service.keys import create_key
from tests.api.conftest import make_settings

gr = pytest.importorskip("gradio")
from t2v.ui import uploads  # noqa: E402  (Gradio needed)

SECRET = np.random.default_rng(7).bytes(300_000)  # what an abuser would host: random bytes in a private chunk


def png(seed: int = 0, side: int = 32, private: bytes = b"") -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    data = buf.getvalue()
    if private:  # an ancillary, private chunk with a valid CRC, before IEND: a valid PNG that carries it
        chunk = struct.pack(">I", len(private)) + b"prVt" + private + struct.pack(">I", zlib.crc32(b"prVt" + private))
        data = data[:-12] + chunk + data[-12:]
    return data


def send(client, data: bytes, key: str | None = None, name: str = "first.png"):
    cookies = {uploads.KEY_COOKIE: key} if key else {}
    client.cookies.clear()
    return client.post("/gradio_api/upload", files={"files": (name, data, "image/png")}, cookies=cookies)


def read(client, path: str, key: str | None = None):
    client.cookies.clear()
    return client.get(f"/gradio_api/file={path}", cookies={uploads.KEY_COOKIE: key} if key else {})


@pytest.fixture
def page(tiny_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    _, alice = create_key(service.repo.keys, "alice")
    _, bob = create_key(service.repo.keys, "bob", rate="3/minute")
    app = mount_ui(create_app(service.settings, service=service, start_workers=False), service, required=True)
    with TestClient(app) as client:
        yield client, alice, bob, tmp_path / "gradio"


def stored(cache: Path) -> list[Path]:
    return uploads.upload_files(cache) if cache.is_dir() else []


def test_with_keys_an_upload_needs_the_pages_key_and_lands_re_encoded(page):
    client, alice, bob, cache = page
    data = png(1, private=SECRET)
    assert Image.open(io.BytesIO(data)).size == (32, 32) and len(data) > 300_000
    for key in (None, "t2v_not-a-key"):
        r = send(client, data, key)
        assert r.status_code == 401 and "API key" in r.text, r.text
    assert stored(cache) == []
    r = send(client, data, alice)
    assert r.status_code == 200, r.text
    (path,) = r.json()
    kept = Path(path).read_bytes()
    assert SECRET[:64] not in kept and len(kept) < 10_000  # the private chunk never reached the disk
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(kept))), np.asarray(Image.open(io.BytesIO(data))))
    # Read back by its key only: no key and another key get 404, as for a file that does not exist.
    assert read(client, path).status_code == 404
    assert read(client, path, bob).status_code == 404
    back = read(client, path, alice)
    assert back.status_code == 200 and back.content == kept
    # A bearer header works as the cookie does (clients other than the page).
    client.cookies.clear()
    assert client.post("/gradio_api/upload", files={"files": ("b.png", png(2), "image/png")},
                       headers={"Authorization": f"Bearer {alice}"}).status_code == 200


def test_uploads_count_against_the_key_and_each_caller_has_a_cap(page, monkeypatch):
    client, alice, bob, cache = page
    for i in range(3):  # bob's rate: 3 requests a minute
        assert send(client, png(10 + i), bob).status_code == 200
    limited = send(client, png(20), bob)
    assert limited.status_code == 429 and "rate limit" in limited.text and int(limited.headers["retry-after"]) >= 1
    monkeypatch.setattr(uploads, "UPLOADS_PER_CALLER", 4)
    for i in range(4):
        assert send(client, png(30 + i), alice).status_code == 200
    capped = send(client, png(40), alice)
    assert capped.status_code == 429 and "kept already" in capped.text
    assert len(stored(cache)) == 7


def test_uploads_are_removed_minutes_after_their_last_use(page):
    client, alice, _, cache = page
    (path,) = send(client, png(5), alice).json()
    ledger = next(r.app.state.t2v_uploads for r in client.app.router.routes if hasattr(getattr(r, "app", None), "blocks"))
    assert ledger.sweep() == 0 and Path(path).exists()
    assert ledger.sweep(now=time.time() + uploads.UPLOAD_TTL_S + 1) == 1
    assert not Path(path).exists() and stored(cache) == []
    assert read(client, path, alice).status_code in (403, 404)


def test_without_keys_each_client_has_a_cap_and_nothing_unchecked_lands(tiny_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(uploads, "UPLOADS_PER_CALLER", 2)
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    app = mount_ui(create_app(service.settings, service=service, start_workers=False), service, required=True)
    with TestClient(app) as client:
        first = send(client, png(1, private=SECRET))
        assert first.status_code == 200 and SECRET[:64] not in Path(first.json()[0]).read_bytes()
        assert send(client, png(2)).status_code == 200
        third = send(client, png(3))
        assert third.status_code == 429 and "kept already" in third.text
        kept = stored(tmp_path / "gradio")
        assert len(kept) == 2 and all(os.path.getsize(p) < 10_000 for p in kept)


def test_a_control_clip_lands_as_sent_only_when_it_decodes_and_only_its_key_reads_it(page, tmp_path):
    from t2v.export.writers import write_video

    client, alice, bob, cache = page
    frames = np.random.default_rng(3).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    write_video(frames, tmp_path / "pose.mp4", "mp4", 8, crf=4)
    data = (tmp_path / "pose.mp4").read_bytes()
    assert send(client, data, name="pose.mp4").status_code == 401  # no key: nothing lands
    r = send(client, data, alice, name="pose.mp4")
    assert r.status_code == 200, r.text
    (path,) = r.json()
    assert Path(path).read_bytes() == data and path.endswith(".mp4")  # as sent: the pixels a control run reads
    assert read(client, path, bob).status_code == 404 and read(client, path, alice).content == data
    for bad in (data[:8] + SECRET, data[:200]):  # an mp4 header before random bytes; a cut-off clip
        r = send(client, bad, alice, name="pose.mp4")
        assert r.status_code == 415, r.text
    assert [p.read_bytes() for p in stored(cache)] == [data]
