"""With API keys on, the page still plays and downloads a job's files, through per-session copies.

The page is driven through Gradio's own protocol (``/gradio_api/queue/join`` + the session's event
stream, as the browser does) on a real app with the tiny model: the session with the owning key gets
URLs that play, the same bytes as the job's files; they name no job id and no T2V_HOME path, and each
request gets fresh ones. A session with another key, or none, gets nothing.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from t2v.service.keys import create_key
from t2v.ui import handlers as H
from tests.api.conftest import make_settings

gr = pytest.importorskip("gradio")

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


class Page:
    """One browser session of the page, speaking Gradio's queue protocol."""

    def __init__(self, client: TestClient, session: str):
        self.client, self.session = client, session
        config = client.get("/config").json()
        self.ids = {c["props"]["elem_id"]: c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
        self.deps = config["dependencies"]

    def dep(self, elem_id: str, trigger: str) -> dict:
        """The dependency that does the work of ``trigger`` on ``elem_id``: the one it starts, or, where that
        only sets the page up (Generate switches itself off first, with no inputs), the one run after it."""
        first = next(d for d in self.deps if [self.ids[elem_id], trigger] in d["targets"])
        after = [d for d in self.deps if d.get("trigger_after") == first["id"]]
        return after[0] if not first["inputs"] and after else first

    def call(self, elem_id: str, trigger: str, data: list, event_data=None) -> list:
        return self.call_fn(self.dep(elem_id, trigger)["id"], self.ids[elem_id], data, event_data)

    def call_fn(self, fn: int, target: int, data: list, event_data=None) -> list:
        """Run the dependency ``fn`` as ``target`` (a component id) triggers it; its outputs."""
        r = self.client.post("/gradio_api/queue/join", json={
            "data": data, "fn_index": fn, "trigger_id": target, "session_hash": self.session, "event_data": event_data})
        assert r.status_code == 200, r.text
        event_id, output = r.json()["event_id"], None
        with self.client.stream("GET", f"/gradio_api/queue/data?session_hash={self.session}") as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    assert msg.get("success", True), msg
                    output = msg["output"]["data"]
                if msg.get("msg") == "close_stream":
                    break
        assert output is not None
        return output


def urls(value) -> list[str]:
    """Every file URL in a Gradio output value."""
    found = []
    if isinstance(value, dict):
        if value.get("meta", {}).get("_type") == "gradio.FileData":
            found.append(value["url"])
        for v in value.values():
            found += urls(v)
    elif isinstance(value, list):
        for v in value:
            found += urls(v)
    return found


@pytest.fixture
def page_app(tiny_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model))
    _, alice = create_key(service.repo.keys, "alice")
    _, bob = create_key(service.repo.keys, "bob")
    with TestClient(mount_ui(create_app(service.settings, service=service), service, required=True)) as client:
        yield client, service, alice, bob, tmp_path / "gradio"


def made_on_the_page(service, token: str, prompt: str) -> str:
    """A job submitted through the page's handler with ``token``, once it has finished: its id."""
    job_id, _ = H.submit(service, {**H.default_form(service), "prompt": prompt, **SMALL}, token=token)
    deadline = time.time() + 120
    while service.get(job_id).status not in H.FINISHED:
        assert time.time() < deadline
        time.sleep(0.05)
    return job_id


def test_the_owning_session_gets_playable_private_copies_and_others_get_nothing(page_app):
    import av

    client, service, alice, bob, cache = page_app
    job_id = made_on_the_page(service, alice, "a tiny red square")
    job = service.get(job_id)
    assert job.status == "succeeded", job.error
    originals = {fmt: service.file_path(job, fmt) for fmt in ("webm", "mp4", "gif", "json")}
    originals["poster"] = service.image_path(job_id, "poster.png")

    mine = Page(client, "alice-session")
    key_msg, gallery, _ = mine.call("t2v-key-button", "click", [alice, ""])
    assert "alice" in key_msg and len(urls(gallery)) == 1
    shown = mine.call("t2v-history", "select", [None, alice], {"index": 0, "value": None, "selected": True})
    assert shown[0].startswith("Done") and job_id in shown
    player, *download_urls = urls(shown)
    got = {Path(u).suffix[1:]: u for u in download_urls}  # each named after the prompt and the seed
    stem = f"a-tiny-red-square-seed{job.request['seed']}"
    assert {Path(u).name for u in download_urls} == {f"{stem}.{fmt}" for fmt in ("mp4", "webm", "gif", "json")}
    assert player.endswith("/video.webm")

    home = str(service.settings.home)
    for url, original in [(player, originals["webm"]), (urls(gallery)[0], originals["poster"]),
                          *((got[fmt], originals[fmt]) for fmt in ("mp4", "webm", "gif", "json"))]:
        # Not guessable: no job id, no T2V_HOME, a fresh 128-bit folder in Gradio's cache.
        path = url.split("/gradio_api/file=", 1)[1]
        assert job_id not in url and home not in url
        assert re.fullmatch(re.escape(str(cache)) + r"/t2v-[0-9a-f]{32}/[\w.-]+", path), url
        r = client.get(url)  # what the browser fetches: the same bytes as the job's file
        assert r.status_code == 200 and r.content == original.read_bytes(), url
    with av.open(io.BytesIO(client.get(player).content)) as clip:  # and it plays: every frame decodes
        assert sum(1 for _ in clip.decode(video=0)) == SMALL["num_frames"]
    again = mine.call("t2v-history", "select", [None, alice], {"index": 0, "value": None, "selected": True})
    assert urls(again)[0] != player  # each request gets its own copy

    for session, token, text in (("bob-session", bob, "bob"), ("no-key-session", "", "needs an API key")):
        other = Page(client, session)
        key_msg, gallery, _ = other.call("t2v-key-button", "click", [token, ""])
        assert text in key_msg and urls(gallery) == []
        shown = other.call("t2v-history", "select", [None, token], {"index": 0, "value": None, "selected": True})
        assert urls(shown) == [] and job_id not in json.dumps(shown)


def served(client, url: str) -> bool:
    """Whether ``url`` still answers 200. The sweep may remove the file while this read streams it: the file
    server then finds it gone mid-response (FileNotFoundError) or between Gradio's check and its own (Starlette's
    RuntimeError "... does not exist."), which the test client raises; that copy is gone too."""
    try:
        return client.get(url).status_code == 200
    except FileNotFoundError:
        return False
    except RuntimeError as e:
        if "does not exist" in str(e):
            return False
        raise


def test_a_deleted_jobs_copies_go_within_the_sweep_whichever_route_deleted_it(page_app, monkeypatch):
    from t2v.ui import files

    monkeypatch.setattr(files, "ORPHAN_SWEEP_S", 0.2)
    client, service, alice, _, cache = page_app
    job_id = made_on_the_page(service, alice, "a tiny blue square")
    mine = Page(client, "alice-session")
    mine.call("t2v-key-button", "click", [alice, ""])
    shown = mine.call("t2v-history", "select", [None, alice], {"index": 0, "value": None, "selected": True})
    copies = urls(shown)
    assert copies and all(client.get(u).status_code == 200 for u in copies)
    r = client.delete(f"/v1/videos/{job_id}?remove=true", headers={"Authorization": f"Bearer {alice}"})  # the API
    assert r.status_code in (200, 204), r.text
    deadline = time.time() + 10
    while any(served(client, u) for u in copies):
        assert time.time() < deadline, [u for u in copies if served(client, u)]
        time.sleep(0.1)
    assert not [p for p in cache.glob("t2v-*/video.*")]


def test_gradio_is_told_to_block_t2v_home_and_its_cache_must_lie_outside(tmp_path):
    from t2v.errors import T2VError
    from t2v.ui.files import blocked_paths

    real = tmp_path / "data" / "home"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    assert blocked_paths(tmp_path / "link" / "home", tmp_path / "gradio") == [str(tmp_path / "link" / "home"), str(real)]
    for cache in (real, real / "gradio"):
        with pytest.raises(T2VError, match="set GRADIO_TEMP_DIR to a folder outside T2V_HOME"):
            blocked_paths(real, cache)
