"""A longer video as a job of a real ``t2v serve``: killed (-9) mid-way, it resumes on the restarted server from
the last segment done and succeeds once with exactly its frames; a clip path is never read; the cost limit
counts every segment."""

from __future__ import annotations

import io
import signal

import av
import pytest

from t2v.errors import InvalidRequest
from t2v.requests import GenerationRequest
from t2v.service.limits import admit
from t2v.settings import Settings
from tests.api.test_server import Server
from tests.web import HTTP

LONG = {"prompt": "a ball", "seconds": 2.5, "num_frames": 6, "fps": 8, "num_inference_steps": 10, "width": 32,
        "height": 32, "seed": 11, "overlap": 2}  # 20 frames: a text segment of 10 steps, 4 continuations of 7


def test_kill_9_during_a_long_job_resumes_from_its_last_segment(tiny_model, tmp_path):
    home = tmp_path / "home"
    s = Server(home, tiny_model).start()
    job_id = s.submit(**LONG)
    s.wait(job_id, ("running",), cond=lambda j: j["progress"]["step"] >= 10 + 7 + 2)  # in segment 3
    s.stop(signal.SIGKILL)
    s2 = Server(home, tiny_model, port=s.port).start()
    try:
        job = s2.wait(job_id, timeout=300)
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2
        long = job["result"]["metadata"]["long"]
        assert long["resumed_from_segment"] >= 2 and len(long["segments"]) == 5 and long["frames"] == 20
        mp4 = next(f for f in job["result"]["files"] if f["format"] == "mp4")
        data = HTTP.get(mp4["url"]).content
        with av.open(io.BytesIO(data)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 20
        assert not list((home / "checkpoints").glob("*.ckpt"))
        r = HTTP.post(f"{s2.url}/v1/videos", json={**LONG, "extend": "/etc/passwd"})
        assert r.status_code == 422 and "extend" in r.text
        # extend an uploaded clip (the video just made) by 1 s
        asset = HTTP.post(f"{s2.url}/v1/assets", files={"file": ("long.mp4", data, "video/mp4")}).json()["id"]
        job = s2.wait(s2.submit(**{**LONG, "extend": asset, "seconds": 1}))
        assert job["status"] == "succeeded", job["error"]
        long = job["result"]["metadata"]["long"]
        assert long["clip"]["frames"] == 20 and long["frames"] == 28 and long["segments"][0]["kind"] == "video"
    finally:
        s2.stop()


def test_the_cost_limit_counts_every_segment(tiny_model):
    request = GenerationRequest.create(**{**LONG, "model": str(tiny_model)})
    one = 6 * 32 * 32 * 10
    with pytest.raises(InvalidRequest, match="5 segments of 6 frames") as e:
        admit(request, Settings(max_cost=one * 4))
    assert e.value.field == "seconds"
    assert admit(request, Settings(max_cost=one * 5)).seconds == 2.5
