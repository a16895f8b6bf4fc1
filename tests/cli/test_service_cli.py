"""`t2v jobs`, `t2v history` and `t2v keys` read and write the same database as the server."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from t2v.cli import app
from t2v.service import build_services
from t2v.settings import get_settings

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_keys_create_list_revoke():
    created = run("keys", "create", "--name", "alice", "--rate", "30/minute", "--max-queued", "5")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("t2v_") and len(token) > 30
    svc = build_services(get_settings())
    (key,) = svc.repo.list_keys()
    assert key.name == "alice" and key.rate_limit == "30/minute" and key.max_queued == 5
    assert key.key_hash != token and token not in json.dumps(key.__dict__, default=str)  # only the hash is stored
    listed = run("keys", "list")
    assert listed.exit_code == 0 and "alice" in listed.stdout and token not in listed.stdout
    assert run("keys", "revoke", key.id).exit_code == 0
    assert svc.repo.get_key_by_hash(key.key_hash) is None
    assert run("keys", "revoke", "NOPE").exit_code == 2
    assert run("keys", "create", "--name", "bob", "--rate", "lots").exit_code == 2


def test_keys_create_with_a_cost_limit():
    created = run("keys", "create", "--name", "carol", "--max-cost", "26214400")
    assert created.exit_code == 0, created.output
    (key,) = build_services(get_settings()).repo.list_keys()
    assert key.name == "carol" and key.max_cost == 26214400
    listed = run("keys", "list")
    assert listed.exit_code == 0 and "26214400" in listed.stdout
    bad = run("keys", "create", "--name", "dave", "--max-cost", "0")
    assert bad.exit_code == 2 and "max-cost" in bad.stderr


def test_jobs_list_show_cancel_and_history(tiny_model):
    svc = build_services(get_settings(default_model=str(tiny_model)))
    a, _ = svc.submit({"prompt": "a red circle", "num_frames": 2, "width": 16, "height": 16, "num_inference_steps": 1})
    b, _ = svc.submit({"prompt": "a blue square", "num_frames": 2, "width": 16, "height": 16, "num_inference_steps": 1})
    listed = run("jobs", "list", "--json")
    assert listed.exit_code == 0
    assert [j["id"] for j in json.loads(listed.stdout)] == [b.id, a.id]
    shown = run("jobs", "show", a.id)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["request"]["prompt"] == "a red circle"
    assert run("jobs", "show", "NOPE").exit_code == 2
    cancelled = run("jobs", "cancel", a.id)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    assert svc.repo.get_job(a.id).status == "cancelled"
    # Run the remaining job to completion, then it shows in history.
    svc.start()
    try:
        import time

        deadline = time.time() + 120
        while svc.repo.get_job(b.id).status != "succeeded" and time.time() < deadline:
            time.sleep(0.1)
    finally:
        svc.stop()
    hist = run("history", "--json")
    assert hist.exit_code == 0 and [j["id"] for j in json.loads(hist.stdout)] == [b.id]
    assert json.loads(run("history", "square", "--json").stdout)[0]["id"] == b.id
    assert json.loads(run("history", "circle", "--json").stdout) == []
    table = run("history")
    assert table.exit_code == 0 and b.id in table.stdout
    assert run("jobs", "list", "--status", "nope").exit_code == 2
