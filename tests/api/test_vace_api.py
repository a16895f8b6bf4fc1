"""Asset fields over the API. VACE control: the control video, the mask and the reference images are uploaded assets of the
caller's key (never paths); the job's frames equal a local run on the same files; another key's assets, a path
and a clip of another size are refused at submit naming the field, and nothing is queued."""

from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.export.writers import write_video
from t2v.service.keys import create_key
from tests.api.conftest import make_settings, wait_for
from tests.api.test_assets import bearer, loc_field, png, upload

SHAPE = {"num_frames": 5, "width": 32, "height": 32, "num_inference_steps": 2, "seed": 4}


@pytest.fixture(scope="module")
def tiny_vace(tmp_path_factory):
    from tests.tinymodels import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-wan-vace", family="wan-vace", seed=0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("vace-clips")
    frames = write_clips(root, 5, "control.mp4", 4)
    (root / "ref.png").write_bytes(png(24, 40, seed=2))
    return root


def write_clips(root, n: int, name: str, step: int):
    """A 32x32 clip of ``n`` gradient frames as ``name``, a moving-block mask (``step`` px a frame) as mask.gif and
    the clip stretched to 32x64 as tall.mp4; the frames."""
    yy, xx = np.mgrid[0:32, 0:32]
    frames = np.stack([np.stack([(xx * 7 + i * 20) % 256, (yy * 5) % 256, (xx + yy + i) % 256], -1)
                       for i in range(n)]).astype(np.uint8)
    write_video(frames, root / name, "mp4", 8, crf=4)
    write_video(moving_mask(n, step), root / "mask.gif", "gif", 8)
    write_video(np.repeat(frames, 2, axis=1)[:, :, :32], root / "tall.mp4", "mp4", 8, crf=4)  # 32x64
    return frames


def moving_mask(n: int, step: int):
    """``n`` 32x32 mask frames (RGB): a white 16x16 block moving ``step`` px right a frame (each frame different:
    a GIF writer merges equal ones)."""
    mask = np.zeros((n, 32, 32, 3), np.uint8)
    for i in range(n):
        mask[i, 8:24, step * i:step * i + 16] = 255
    return mask


@contextlib.contextmanager
def two_keys(model, home):
    """(client, service, alice's key, bob's key) of an app over ``model`` with keys on."""
    app = create_app(make_settings(home, model))
    service = app.state.service
    _, alice = create_key(service.repo.keys, "alice")
    _, bob = create_key(service.repo.keys, "bob")
    with TestClient(app) as client:
        yield client, service, alice, bob


@pytest.fixture
def keyed(tiny_vace, tmp_path):
    with two_keys(tiny_vace, tmp_path / "home") as k:
        yield k


def succeeded(client, body, token, clips):
    """Submit ``body`` with ``token``, wait for it to succeed: (its record, the sha256 of a file in ``clips``)."""
    r = client.post("/v1/videos", json=body, headers=bearer(token))
    assert r.status_code == 202, r.text
    done = wait_for(client, r.json()["id"], headers=bearer(token))
    assert done["status"] == "succeeded", done["error"]
    meta = client.get(f"/v1/videos/{done['id']}/metadata", headers=bearer(token)).json()
    return meta, lambda name: hashlib.sha256((clips / name).read_bytes()).hexdigest()


def send(client, path, token):
    kind = "image/png" if path.suffix == ".png" else ("image/gif" if path.suffix == ".gif" else "video/mp4")
    r = upload(client, path.read_bytes(), path.name, token=token, content_type=kind)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_vace_job_runs_on_the_keys_assets_as_a_local_run_does(keyed, clips, tiny_vace):
    from t2v import generate
    from t2v.requests import GenerationRequest

    client, service, alice, bob = keyed
    ids = {n: send(client, clips / n, alice) for n in ("control.mp4", "mask.gif", "ref.png")}
    body = {"prompt": "a dancer", "model": str(tiny_vace), "control_video": ids["control.mp4"],
            "mask_video": ids["mask.gif"], "reference_images": [ids["ref.png"]], "control_scale": 0.8, **SHAPE}
    meta, sha = succeeded(client, body, alice, clips)
    assert meta["control_video_sha256"] == sha("control.mp4") and meta["mask_video_sha256"] == sha("mask.gif")
    assert meta["reference_images_sha256"] == [sha("ref.png")]
    local = generate(GenerationRequest(prompt="a dancer", model=str(tiny_vace), control_video=str(clips / "control.mp4"),
                                       mask_video=str(clips / "mask.gif"), reference_images=[str(clips / "ref.png")],
                                       control_scale=0.8, formats=(), **SHAPE))
    assert meta["frames_sha256"] == local.record["frames_sha256"]
    # bob cannot name alice's assets: each is refused as a missing one, and nothing is queued
    for field, value in (("control_video", ids["control.mp4"]), ("mask_video", ids["mask.gif"]),
                         ("reference_images", [ids["ref.png"]])):
        fields = {**body, "control_video": send(client, clips / "control.mp4", bob), "mask_video": None,
                  "reference_images": [], field: value}
        r = client.post("/v1/videos", json=fields, headers=bearer(bob))
        assert r.status_code == 422 and loc_field(r) == field and "no uploaded asset" in r.text, r.text
    assert client.get("/v1/videos", headers=bearer(bob)).json()["items"] == []


def test_paths_and_clips_of_another_size_are_refused_at_submit(keyed, clips, tiny_vace):
    client, service, alice, _ = keyed
    base = {"prompt": "a dancer", "model": str(tiny_vace), **SHAPE}
    for field, value in (("control_video", str(clips / "control.mp4")), ("reference_images", [str(clips / "ref.png")]),
                         ("control_video", "/etc/passwd")):
        r = client.post("/v1/videos", json={**base, field: value}, headers=bearer(alice))
        assert r.status_code == 422 and loc_field(r) == field, r.text
        assert "`image`" not in r.text  # the multipart upload and video-to-video hints are the first frame's only
    tall = send(client, clips / "tall.mp4", alice)
    r = client.post("/v1/videos", json={**base, "control_video": tall}, headers=bearer(alice))
    assert r.status_code == 422 and loc_field(r) == "control_video" and "32x64" in r.text and "fit" in r.text, r.text
    r = client.post("/v1/videos", json={**base, "control_video": tall, "fit": True}, headers=bearer(alice))
    assert r.status_code == 202, r.text
    done = wait_for(client, r.json()["id"], headers=bearer(alice))
    assert done["status"] == "succeeded", done["error"]


def test_first_last_frame_takes_image_id_and_last_image_id(keyed, tmp_path_factory):
    from tests.tinymodels import make_tiny

    client, service, alice, bob = keyed
    flf = make_tiny(tmp_path_factory.mktemp("models") / "tiny-wan-flf2v", family="wan-flf2v", seed=0)
    first, last = (upload(client, png(64, 32, seed=s), token=alice).json()["id"] for s in (5, 6))
    body = {"prompt": "a flower opens", "model": str(flf), "num_frames": 5, "width": 64, "height": 32,
            "num_inference_steps": 2}
    r = client.post("/v1/videos", json={**body, "image_id": first, "last_image_id": last}, headers=bearer(alice))
    assert r.status_code == 202, r.text
    assert (r.json()["request"]["image"], r.json()["request"]["last_image"]) == (first, last)
    done = wait_for(client, r.json()["id"], headers=bearer(alice))
    assert done["status"] == "succeeded", done["error"]
    r = client.post("/v1/videos", json={**body, "image_id": first, "image": last, "last_image_id": last},
                    headers=bearer(alice))
    assert r.status_code == 422 and "not both" in r.text, r.text
    r = client.post("/v1/videos", json={**body, "image_id": first, "last_image_id": last}, headers=bearer(bob))
    assert r.status_code == 422 and "no uploaded asset" in r.text  # another key's frames
