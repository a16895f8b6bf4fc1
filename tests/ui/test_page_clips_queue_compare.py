"""The page's own clip (video-to-video, extend, post-processing of an uploaded video), its queue view and its
Compare tab, driven through Gradio's protocol (as the browser does, see test_private_files.Page) on a real app
with the tiny video model: the jobs the server queues, their decoded results, and what the page shows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.export.writers import decode_video, write_video
from t2v.service import build_services
from t2v.ui import handlers as H
from t2v.ui.queue_panel import queue_rows
from tests.api.conftest import make_settings
from tests.ui.test_page_events import Events, wait
from tests.ui.test_private_files import urls

gr = pytest.importorskip("gradio")


def clip_file(tmp_path: Path, frames: int = 5, side: int = 32) -> Path:
    """A little mp4: a white square moving right on black."""
    video = np.zeros((frames, side, side, 3), np.uint8)
    for i in range(frames):
        video[i, 8:20, 2 + 3 * i:14 + 3 * i] = 255
    path = tmp_path / "mine.mp4"
    write_video(video, path, "mp4", 8, crf=4)
    return path


def uploaded(client: TestClient, path: Path) -> dict:
    r = client.post("/gradio_api/upload", files={"files": (path.name, path.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def form_values(service, **over) -> dict:
    values = H.default_form(service)
    by_id = {"t2v-" + k: v for k, v in (
        ("prompt", "a tiny red square"), ("negative", ""), ("model", values["model"]), ("frames", 5), ("steps", 2),
        ("guidance", values["guidance_scale"]), ("fps", 8), ("width", 32), ("height", 32),
        ("scheduler", values["scheduler"]), ("seed-mode", "fixed"), ("seed", "5"), ("formats", ["mp4"]),
        ("interpolate", "Off"), ("interpolation", "auto"), ("upscale", "Off"), ("upscaler", "lanczos"),
        ("deflicker", False), ("key", ""), ("search", ""), ("control-scale", 1.0), ("fit", False),
        ("seconds", 0), ("source-use", "video-to-video"), ("strength", ""))}
    return {**by_id, **{"t2v-" + k: v for k, v in over.items()}}


def generate(events: Events, values: dict) -> dict:
    dep = events.dep("t2v-generate", "click")
    names = {v: k for k, v in events.ids.items()}
    return events.named("t2v-generate", "click", [values.get(names.get(i)) for i in dep["inputs"]])


@pytest.fixture
def page(tiny_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    with TestClient(mount_ui(create_app(service.settings, service=service), service, required=True)) as client:
        yield Events(client, "a-session"), service


def test_an_uploaded_clip_makes_video_to_video_and_post_only_jobs_and_bad_uses_are_named(page, tmp_path):
    events, service = page
    mine = clip_file(tmp_path)
    sha = hashlib.sha256(mine.read_bytes()).hexdigest()

    shown = generate(events, form_values(service, **{"source-video": uploaded(events.client, mine),
                                                      "strength": "0.5"}))
    job = wait(service, shown["t2v-job-id"])
    assert job.status == "succeeded", job.error
    assert job.request["strength"] == 0.5 and service.assets.get_asset(job.request["video"])["sha256"] == sha
    frames, _ = decode_video(service.file_path(job, "mp4"))
    assert frames.shape == (5, 32, 32, 3)

    # post-processing only: the clip as it is, interpolated 2x (2n-1 frames at twice the fps), no model run
    shown = generate(events, form_values(service, **{"source-video": uploaded(events.client, mine),
                                                      "source-use": "post-process only", "interpolate": "2x",
                                                      "formats": ["mp4", "webm"]}))
    job = wait(service, shown["t2v-job-id"])
    assert job.status == "succeeded", job.error
    assert job.request["mode"] == "post" and service.assets.get_asset(job.request["asset"])["sha256"] == sha
    frames, fps = decode_video(service.file_path(job, "mp4"))
    assert frames.shape == (9, 32, 32, 3) and fps == pytest.approx(16)
    assert shown["t2v-status"].startswith("Done") and "Seed" not in shown["t2v-status"]  # a post job draws none
    assert "interpolate 2x" in shown["t2v-info"]

    before = len(service.list(limit=50))
    for over, words in (({"source-use": "post-process only"}, "Post-processing: choose deflicker, interpolation"),
                        ({"source-use": "extend"}, "Seconds: give the seconds to add"),
                        ({"strength": "1.5"}, "Strength")):
        refused = generate(events, form_values(service, **{"source-video": uploaded(events.client, mine), **over}))
        assert words in refused["t2v-status"] and refused["t2v-job-id"] == "", (over, refused["t2v-status"])
    assert len(service.list(limit=50)) == before  # nothing queued for a refused form


def test_the_queue_lists_the_keys_waiting_jobs_in_order_and_a_row_opens_its_job(tiny_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    alice, bob = service.access.create_key("alice")[1], service.access.create_key("bob")[1]
    form = {**H.default_form(service), "num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}
    low, _ = H.submit(service, {**form, "prompt": "low"}, token=alice)
    high, _ = H.submit(service, {**form, "prompt": "high"}, token=alice)
    held, _ = H.submit(service, {**form, "prompt": "held"}, token=alice)
    H.set_priority(service, high, 10, alice)  # the key's highest (T2V_MAX_PRIORITY)
    H.pause(service, held, alice)
    H.submit(service, {**form, "prompt": "bob's"}, token=bob)

    rows = queue_rows(service, alice)  # (no workers: all wait)
    assert [(r[1], r[4]) for r in rows] == [("queued", "high"), ("queued", "low"), ("paused", "held")]
    assert rows[0][0] == 1 and rows[1][0] > 1 and rows[0][2] == 10 and rows[0][5] == high
    assert [r[4] for r in queue_rows(service, bob)] == ["bob's"]  # each key sees its own jobs only
    with pytest.raises(H.UIError, match="API key"):
        queue_rows(service, None)

    app = mount_ui(create_app(service.settings, service=service, start_workers=False), service, required=True)
    with TestClient(app) as client:
        events = Events(client, "s")
        config = client.get("/config").json()
        timers = [c["id"] for c in config["components"] if c.get("type") == "timer"]
        (tick, timer), = [(d, t) for d in config["dependencies"] for t in timers if [t, "tick"] in d["targets"]]
        note, table, _ = events.call_fn(tick["id"], timer, [alice])  # the page refreshes its table on the timer
        assert note.startswith("3 of your jobs") and [r[4] for r in table["value"]["data"]] == ["high", "low", "held"]
        assert table["value"]["data"][0][5] == "…" + high[-8:].lower()  # the id's tail (the full ids kept apart)
        row, ids = rows[1], None  # (a State: the session's own, set by the tick)
        shown = events.named("t2v-queue-table", "select", [ids, alice],
                             {"index": [1, 4], "value": row[4], "row_value": row, "col_value": None, "selected": True})
        assert shown["t2v-job-id"] == low and "position" in shown["t2v-status"]
        assert shown["t2v-tabs"].get("selected") == "video"  # where Cancel, Pause, Resume act on it
        assert events.named("t2v-queue-table", "select", [ids, bob], {"index": [1, 4], "value": row[4], "row_value": row})[
            "t2v-status"].count("does not exist")  # another key's job: not shown


def test_compare_two_clips_side_by_side_with_their_differences(page):
    events, service = page
    form = {**H.default_form(service), "num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2,
            "seed_mode": "fixed"}
    a, _ = H.submit(service, {**form, "prompt": "a red circle", "seed": "1"})
    b, _ = H.submit(service, {**form, "prompt": "a red circle", "seed": "2", "num_inference_steps": 3})
    assert wait(service, a).status == wait(service, b).status == "succeeded"

    opened = events.named("t2v-tab-compare", "select", ["", b])
    ids = [v for _, v in opened["t2v-compare-a-job"]["choices"]]
    assert set(ids) == {a, b} and opened["t2v-compare-a-job"]["value"] == b  # the job shown first
    assert opened["t2v-compare-b-job"]["value"] == a

    shown = events.named("t2v-compare", "click", [a, b, ""])
    for elem, job in (("t2v-compare-a", a), ("t2v-compare-b", b)):
        (url,) = urls(shown[elem])
        frames, _ = decode_video_bytes(events.client.get(url).content)
        assert frames.shape[0] == 4, elem
        assert events.client.get(url).content == service.file_path(service.get(job), "webm").read_bytes()
    table = shown["t2v-compare-diff"]["value"]
    assert table["headers"] == ["Parameter", "A", "B"]
    rows = {r[0]: (r[1], r[2]) for r in table["data"]}
    assert rows["Seed"] == ("1", "2") and rows["Steps"] == ("2", "3") and "Prompt" not in rows
    assert "2 parameters differ" in shown["t2v-compare-status"]
    refused = events.named("t2v-compare", "click", [a, None, ""])
    assert "Pick two clips" in refused["t2v-compare-status"]


def decode_video_bytes(data: bytes):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "clip.webm"
        path.write_bytes(data)
        return decode_video(path)
