"""Wan-Animate over the API with keys on: the character image, the pose video, the face video and replace mode's
background and mask are uploaded assets of the caller's key; the job's frames equal a local run on the same files;
another key's face video, a path, and a background of another size are refused at submit naming the field, and
nothing is queued."""

from __future__ import annotations

import pytest

from t2v.export.writers import write_video
from tests.api.test_assets import bearer, loc_field, png
from tests.api.test_vace_api import send, succeeded, two_keys, write_clips

SHAPE = {"num_frames": 9, "num_inference_steps": 2, "seed": 4}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("animate-clips")
    frames = write_clips(root, 9, "pose.mp4", 2)
    write_video(frames[:, ::-1, :24], root / "face.mp4", "mp4", 8, crf=4)
    write_video(frames[:, :, ::-1], root / "background.mp4", "mp4", 8, crf=4)
    (root / "character.png").write_bytes(png(24, 40, seed=2))
    return root


@pytest.fixture(scope="module")
def tiny_animate(tmp_path_factory):
    from tests.tinymodels import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-wan-animate", family="wan-animate", seed=0)


@pytest.fixture
def keyed(tiny_animate, tmp_path):
    with two_keys(tiny_animate, tmp_path / "home") as k:
        yield k


def test_an_animate_job_runs_on_the_keys_assets_as_a_local_run_does(keyed, clips, tiny_animate):
    from t2v import generate
    from t2v.requests import GenerationRequest

    client, service, alice, bob = keyed
    names = ("character.png", "pose.mp4", "face.mp4", "background.mp4", "mask.gif")
    ids = {n: send(client, clips / n, alice) for n in names}
    body = {"prompt": "a dancer", "model": str(tiny_animate), "image": ids["character.png"],
            "control_video": ids["pose.mp4"], "face_video": ids["face.mp4"], "background_video": ids["background.mp4"],
            "mask_video": ids["mask.gif"], **SHAPE}
    meta, sha = succeeded(client, body, alice, clips)
    assert meta["face_video_sha256"] == sha("face.mp4") and meta["background_video_sha256"] == sha("background.mp4")
    local = generate(GenerationRequest(prompt="a dancer", model=str(tiny_animate), image=str(clips / "character.png"),
                                       control_video=str(clips / "pose.mp4"), face_video=str(clips / "face.mp4"),
                                       background_video=str(clips / "background.mp4"),
                                       mask_video=str(clips / "mask.gif"), formats=(), **SHAPE))
    assert meta["frames_sha256"] == local.record["frames_sha256"]
    # bob cannot name alice's face video or scene: refused as missing assets, nothing queued
    own = {n: send(client, clips / n, bob) for n in names}
    mine = {"image": own["character.png"], "control_video": own["pose.mp4"], "face_video": own["face.mp4"],
            "background_video": own["background.mp4"], "mask_video": own["mask.gif"]}
    for field, name in (("face_video", "face.mp4"), ("background_video", "background.mp4")):
        r = client.post("/v1/videos", json={**body, **mine, field: ids[name]}, headers=bearer(bob))
        assert r.status_code == 422 and loc_field(r) == field and "no uploaded asset" in r.text, r.text
    assert client.get("/v1/videos", headers=bearer(bob)).json()["items"] == []


def test_paths_and_a_scene_of_another_size_are_refused_at_submit(keyed, clips, tiny_animate):
    client, service, alice, _ = keyed
    ids = {n: send(client, clips / n, alice) for n in ("character.png", "pose.mp4", "face.mp4", "mask.gif", "tall.mp4")}
    base = {"prompt": "a dancer", "model": str(tiny_animate), "image": ids["character.png"],
            "control_video": ids["pose.mp4"], "face_video": ids["face.mp4"], **SHAPE}
    for field, value in (("face_video", str(clips / "face.mp4")), ("face_video", "/etc/passwd"),
                         ("background_video", "/etc/passwd")):
        extra = {"mask_video": ids["mask.gif"]} if field == "background_video" else {}
        r = client.post("/v1/videos", json={**base, **extra, field: value}, headers=bearer(alice))
        assert r.status_code == 422 and loc_field(r) == field, r.text
    r = client.post("/v1/videos", json={**base, "background_video": ids["tall.mp4"], "mask_video": ids["mask.gif"]},
                    headers=bearer(alice))
    assert r.status_code == 422 and loc_field(r) == "background_video" and "32x64" in r.text, r.text
    r = client.post("/v1/videos", json={**base, "mask_video": ids["mask.gif"]}, headers=bearer(alice))
    assert r.status_code == 422 and loc_field(r) == "background_video", r.text
    assert client.get("/v1/videos", headers=bearer(alice)).json()["items"] == []
