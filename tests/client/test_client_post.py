"""t2v.client against a real ``t2v serve``: a video uploaded as an asset, post-processed (``post_process``) from the
asset and from a finished job, and used for video-to-video (``submit(video=...)``); sync and async alike."""

from __future__ import annotations

import asyncio

import pytest

from t2v.client import AsyncClient, Client, InvalidRequest, NotFound
from t2v.export import decode_video
from tests.api.test_post_api import BLEND2, clip_bytes
from tests.client.conftest import SMALL


def test_upload_a_video_then_post_process_it_and_use_it_for_video_to_video(server, tmp_path):
    with Client(server.url, server.key, timeout=30) as c:
        asset = c.upload(clip_bytes(tmp_path))
        assert asset.kind == "video" and asset.content_type == "video/mp4"
        job = c.wait(c.post_process(BLEND2, asset=asset.id).id, timeout=120)
        assert job.status == "succeeded", job.error
        frames, fps = decode_video(c.download(job.id, tmp_path / "post.mp4"))
        assert frames.shape[0] == 9 and fps == 16
        v2v = c.wait(c.submit("a red ball", video=asset.id, strength=0.0, seed=1, **SMALL).id, timeout=120)
        assert v2v.status == "succeeded", v2v.error
        assert c.metadata(v2v.id)["video"] == asset.id
        again = c.wait(c.post_process({"upscale": 2}, job=v2v.id, formats=["webm"]).id, timeout=120)
        assert again.status == "succeeded" and again.file("webm") is not None
        with pytest.raises(NotFound):
            c.post_process(BLEND2, job="01ARZ3NDEKTSV4RRFFQ69G5FAV")
        with pytest.raises(InvalidRequest, match="video"):
            c.submit("a red ball", video="/etc/passwd", **SMALL)
        with pytest.raises(ValueError, match="exactly one source"):
            c.post_process(BLEND2, job=v2v.id, asset=asset.id)


def test_async_client_post_process(server, tmp_path):
    async def main():
        async with AsyncClient(server.url, server.key, timeout=30) as c:
            asset = await c.upload(clip_bytes(tmp_path, "gif"))
            job = await c.wait((await c.post_process(BLEND2, asset=asset.id, formats=["gif"])).id, timeout=120)
            return asset, job

    asset, job = asyncio.run(main())
    assert asset.content_type == "image/gif" and job.status == "succeeded", job.error
    assert job.file("gif") is not None
