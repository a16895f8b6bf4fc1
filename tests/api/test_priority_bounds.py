"""Priority has bounds: a key's jobs go up to its highest priority (``t2v keys create --max-priority``, else the
server's ``T2V_MAX_PRIORITY``, 10), refused with 422 naming the nearest valid value at every way in; and across
keys the fair share decides, so a key that gives every job its highest priority does not jump another's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from t2v.api import create_app
from t2v.cli import app as cli_app
from t2v.service.keys import create_key
from t2v.service.worker import Worker
from tests.api.test_post_api import bearer, loc

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def refused(r, limit: int) -> None:
    assert r.status_code == 422 and loc(r)[-1] == "priority", r.text
    assert f"this API key's highest priority, {limit}; nearest valid: {limit}" in r.text, r.text


def test_a_keys_priority_is_bounded_at_submit_patch_and_batch(settings):
    app = create_app(settings, start_workers=False)
    keys = app.state.service.repo.keys
    _, capped = create_key(keys, "capped", max_priority=3)
    _, plain = create_key(keys, "plain")
    with TestClient(app) as client:
        refused(client.post("/v1/videos", json={"prompt": "x", **SMALL, "priority": 4}, headers=bearer(capped)), 3)
        refused(client.post("/v1/videos", json={"prompt": "x", **SMALL, "priority": 100}, headers=bearer(plain)), 10)
        ok = client.post("/v1/videos", json={"prompt": "x", **SMALL, "priority": 3}, headers=bearer(capped))
        assert ok.status_code == 202 and ok.json()["priority"] == 3, ok.text
        assert client.post("/v1/videos", json={"prompt": "x", **SMALL, "priority": 10},
                           headers=bearer(plain)).status_code == 202
        job = ok.json()["id"]
        refused(client.patch(f"/v1/videos/{job}", json={"priority": 50}, headers=bearer(capped)), 3)
        assert client.get(f"/v1/videos/{job}", headers=bearer(capped)).json()["priority"] == 3, "unchanged"
        assert client.patch(f"/v1/videos/{job}", json={"priority": -5}, headers=bearer(capped)).status_code == 200
        batch = client.post("/v1/batches", json={"requests": [{"prompt": "a", **SMALL}], "priority": 4},
                            headers=bearer(capped))
        refused(batch, 3)
        listed = client.get("/v1/videos", headers=bearer(capped)).json()["items"]
        assert len(listed) == 1, "nothing refused was queued"


def test_a_key_at_its_highest_priority_does_not_jump_another_keys_job(settings):
    """Two keys: "greedy" queues three jobs at its highest priority, then "patient" one at 0. The worker runs
    greedy's first (nobody has used it yet, and it is the oldest), then patient's, in its fair turn, then the
    rest of greedy's."""
    app = create_app(settings, start_workers=False)
    keys = app.state.service.repo.keys
    _, greedy = create_key(keys, "greedy")
    _, patient = create_key(keys, "patient")
    with TestClient(app) as client:
        mine = [client.post("/v1/videos", json={"prompt": f"g{i}", **SMALL, "priority": 10}, headers=bearer(greedy))
                .json()["id"] for i in range(3)]
        theirs = client.post("/v1/videos", json={"prompt": "p", **SMALL}, headers=bearer(patient)).json()["id"]
        worker = Worker(app.state.service, 0)
        order = [worker.run_one() for _ in range(4)]
        assert order == [mine[0], theirs, mine[1], mine[2]], order
        assert all(client.get(f"/v1/videos/{j}", headers=bearer(greedy)).json()["status"] == "succeeded" for j in mine)


@pytest.mark.parametrize("value, words", [(101, "nearest valid: 100"), (-101, "nearest valid: -100")])
def test_keys_create_refuses_a_priority_bound_out_of_range(settings, monkeypatch, value, words):
    monkeypatch.setenv("T2V_HOME", str(settings.home))
    r = CliRunner().invoke(cli_app, ["keys", "create", "--name", "x", "--max-priority", str(value)])
    assert r.exit_code == 2 and words in r.output, r.output


def test_keys_list_shows_the_priority_bound(settings, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    r = runner.invoke(cli_app, ["keys", "create", "--name", "tenant", "--max-priority", "5"])
    assert r.exit_code == 0, r.output
    listed = runner.invoke(cli_app, ["keys", "list"])
    assert "priority up to 5" in listed.output, listed.output
