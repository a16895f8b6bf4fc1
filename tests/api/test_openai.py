"""The OpenAI-style Videos API (/openai/v1) driven by the official ``openai`` SDK against a real ``t2v serve``
(tiny model, two workers, API keys on): create_and_poll, each content variant decoded, list paging, remix,
extend, delete, image-to-video, and each error class."""

from __future__ import annotations

import hashlib
import io
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.test_assets import tiny_i2v as tiny_i2v  # a fixture
from tests.servers import make_keys, serve
from tests.web import HTTP

openai = pytest.importorskip("openai", reason="the openai SDK (the dev extra) is not installed")

SMALL = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    home = tmp_path_factory.mktemp("openai-home")
    key, other, small = make_keys(home, ("main", {}), ("other", {}), ("small", {"max_queued": 1}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp(), workers=2) as s:
        yield SimpleNamespace(url=s.url, key=key, other=other, small=small)


def sdk(server, key=None):
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=key or server.key, max_retries=0)


def frames_of(data: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def t2v_api(server, method: str, path: str, key=None, **kw) -> httpx.Response:
    return HTTP.request(method, f"{server.url}{path}", headers={"Authorization": f"Bearer {key or server.key}"},
                         timeout=60, **kw)


def test_create_and_poll_then_each_content_variant(server):
    client = sdk(server)
    video = client.videos.create_and_poll(prompt="a red ball moving right", seconds="0.5", size="32x32",
                                          extra_body={**SMALL, "seed": 7}, poll_interval_ms=200)
    assert (video.object, video.status, video.progress, video.size, video.seconds) == (
        "video", "completed", 100, "32x32", "0.5")
    assert isinstance(video.created_at, int) and video.completed_at >= video.created_at and video.error is None
    assert video.prompt == "a red ball moving right" and video.remixed_from_video_id is None

    mp4 = client.videos.download_content(video.id).read()
    frames = frames_of(mp4)
    assert frames.shape == (4, 32, 32, 3), "0.5 s at the model's 8 fps"
    own = t2v_api(server, "GET", f"/v1/videos/{video.id}/content")
    assert own.status_code == 200 and hashlib.sha256(own.content).digest() == hashlib.sha256(mp4).digest()
    record = t2v_api(server, "GET", f"/v1/videos/{video.id}/metadata").json()
    assert (record["seed"], record["num_frames"], record["num_inference_steps"]) == (7, 4, 2)

    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.format == "PNG" and thumb.size == (32, 32)
    sheet = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sheet.format == "PNG" and sheet.size == (2 * 34 + 2, 2 * 34 + 2), "4 frames, 2 by 2, 2 px apart"
    top_left = np.asarray(sheet.convert("RGB"))[2:34, 2:34]
    assert np.abs(top_left.astype(int) - frames[0].astype(int)).mean() < 2, "the first frame, top left"

    ranged = HTTP.get(f"{server.url}/openai/v1/videos/{video.id}/content",
                       headers={"Authorization": f"Bearer {server.key}", "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.content == mp4[:100]


def test_list_pages_with_after_limit_and_order_and_shows_only_the_keys_videos(server):
    client = sdk(server, server.other)
    made = [client.videos.create(prompt=f"a blue square {i}", seconds="0.5", size="32x32", extra_body=SMALL).id
            for i in range(3)]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == made[::-1][:2] and first.has_more is True
    assert [v.id for v in client.videos.list(limit=2)] == made[::-1], "the SDK follows last_id"
    assert [v.id for v in client.videos.list(limit=2, order="asc")] == made
    assert not {v.id for v in sdk(server).videos.list(limit=100)} & set(made), "another key's videos are not listed"
    for vid in made:
        client.videos.delete(vid)


def test_remix_keeps_the_request_and_seed_with_a_new_prompt(server):
    client = sdk(server)
    first = client.videos.create_and_poll(prompt="a red ball", seconds="0.5", size="32x32",
                                          extra_body={**SMALL, "seed": 11}, poll_interval_ms=200)
    remix = client.videos.remix(first.id, prompt="a green ball")
    assert remix.remixed_from_video_id == first.id and remix.prompt == "a green ball"
    remix = client.videos.poll(remix.id, poll_interval_ms=200)
    assert remix.status == "completed" and remix.size == "32x32" and remix.seconds == "0.5"
    a = t2v_api(server, "GET", f"/v1/videos/{first.id}/metadata").json()
    b = t2v_api(server, "GET", f"/v1/videos/{remix.id}/metadata").json()
    assert (b["seed"], b["num_inference_steps"], b["num_frames"]) == (a["seed"], a["num_inference_steps"], 4)
    assert b["prompt"] == "a green ball" and b["frames_sha256"] != a["frames_sha256"]


def test_extend_continues_an_uploaded_clip_and_a_video_by_id(server):
    client = sdk(server)
    first = client.videos.create_and_poll(prompt="a red ball", seconds="0.5", size="32x32",
                                          extra_body={**SMALL, "seed": 3}, poll_interval_ms=200)
    clip = client.videos.download_content(first.id).read()
    longer = client.videos.extend(prompt="the red ball keeps moving", seconds="1", video=("clip.mp4", clip, "video/mp4"),
                                  extra_body={**SMALL, "width": 32, "height": 32, "num_frames": 4})
    longer = client.videos.poll(longer.id, poll_interval_ms=200)
    assert longer.status == "completed", longer.error
    frames = frames_of(client.videos.download_content(longer.id).read())
    assert frames.shape[1:] == (32, 32, 3) and len(frames) > 4, "the clip, then about a second more"
    assert longer.seconds == f"{len(frames) / 8:g}", "the whole stitched length"
    assert np.abs(frames[0].astype(int) - frames_of(clip)[0].astype(int)).mean() < 8, "it starts with the clip"

    by_id = t2v_api(server, "POST", "/openai/v1/videos/extensions",
                    files={"prompt": (None, "more"), "seconds": (None, "1"), "video[id]": (None, first.id),
                           "num_inference_steps": (None, "2")})
    assert by_id.status_code == 200, by_id.text
    done = client.videos.poll(by_id.json()["id"], poll_interval_ms=200)
    assert done.status == "completed" and done.size == "32x32", done.error
    other = t2v_api(server, "POST", "/openai/v1/videos/extensions", key=server.other,
                    files={"prompt": (None, "more"), "seconds": (None, "1"), "video[id]": (None, first.id)})
    assert other.status_code == 404 and other.json()["error"]["code"] == "video_not_found"


def test_image_to_video_takes_input_reference_as_the_first_frame(server, tiny_i2v):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    client = sdk(server)
    video = client.videos.create_and_poll(prompt="the square slides", model=str(tiny_i2v), seconds="0.5",
                                          size="32x32", input_reference=("first.png", buf.getvalue(), "image/png"),
                                          extra_body=SMALL, poll_interval_ms=200)
    assert video.status == "completed", video.error
    record = t2v_api(server, "GET", f"/v1/videos/{video.id}/metadata").json()
    assert record["image_sha256"] == hashlib.sha256(buf.getvalue()).hexdigest()
    assert frames_of(client.videos.download_content(video.id).read()).shape == (9, 32, 32, 3), \
        "0.5 s at 16 fps is 8 frames: the nearest count Wan takes (4k+1) is 9"
    assert video.seconds == "0.5625"


def test_errors_have_openais_shape_and_status(server):
    client = sdk(server)
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", size="30x30", extra_body=SMALL)
    assert e.value.param == "size" and "nearest valid: 32x32" in str(e.value)
    assert e.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", size="32x32", seconds="3600", extra_body=SMALL)
    assert e.value.param == "seconds" and "the longest" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", size="32x32", extra_body={"bogus": 1})
    assert e.value.param == "bogus" and "unknown field" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", size="32x32", extra_body={"num_inference_steps": 0})
    assert e.value.param == "num_inference_steps"
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "t2v_wrong").videos.list()
    assert HTTP.get(f"{server.url}/openai/v1/videos").json()["error"]["code"] == "invalid_api_key"

    slow = client.videos.create(prompt="a slow one", seconds="0.5", size="32x32", extra_body={"num_inference_steps": 60})
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.download_content(slow.id)
    assert e.value.param == "video_id" and "not completed" in str(e.value)
    stranger = sdk(server, server.other)
    for call in (lambda: stranger.videos.retrieve(slow.id), lambda: stranger.videos.download_content(slow.id),
                 lambda: stranger.videos.delete(slow.id), lambda: stranger.videos.remix(slow.id, prompt="mine")):
        with pytest.raises(openai.NotFoundError):
            call()
    deleted = client.videos.delete(slow.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (slow.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(slow.id)
    assert t2v_api(server, "GET", f"/v1/videos/{slow.id}").status_code == 404, "gone from t2v's API too"

    limited = sdk(server, server.small)  # a key that may have one queued video
    body = {"prompt": "x", "seconds": "0.5", "size": "32x32", "extra_body": {"num_inference_steps": 60}}
    made, refused = [], None
    for _ in range(4):  # the server's two workers may take two; then one may wait; the next is refused
        try:
            made.append(limited.videos.create(**body).id)
        except openai.RateLimitError as e:
            refused = e
            break
    assert refused is not None and len(made) >= 1, made
    assert refused.body["code"] == "rate_limit_exceeded" and "limit 1" in str(refused)
    for vid in made:
        limited.videos.delete(vid)


def test_a_paused_video_reads_as_queued_and_a_cancelled_one_as_failed_with_its_reason(server):
    client = sdk(server)
    slow = client.videos.create(prompt="a slow one", seconds="0.5", size="32x32", extra_body={"num_inference_steps": 80})
    r = t2v_api(server, "POST", f"/v1/videos/{slow.id}/pause")
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 60  # a running job stops at its next step
    while t2v_api(server, "GET", f"/v1/videos/{slow.id}").json()["status"] != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.videos.retrieve(slow.id).status == "queued", "paused: waiting to go on"
    assert t2v_api(server, "DELETE", f"/v1/videos/{slow.id}").status_code == 200  # t2v's cancel
    gone = client.videos.retrieve(slow.id)
    assert gone.status == "failed" and gone.error.code == "cancelled" and gone.error.message, gone
    assert gone.completed_at is None or gone.completed_at >= gone.created_at
    client.videos.delete(slow.id)
