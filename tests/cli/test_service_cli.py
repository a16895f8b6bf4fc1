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
    created = run("keys", "create", "--name", "alice", "--rate", "30/minute", "--max-queued", "5", "--max-running", "2")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("t2v_") and len(token) > 30
    svc = build_services(get_settings())
    (key,) = svc.repo.keys.list_keys()
    assert key.name == "alice" and key.rate_limit == "30/minute" and key.max_queued == 5 and key.max_running == 2
    assert key.key_hash != token and token not in json.dumps(key.__dict__, default=str)  # only the hash is stored
    listed = run("keys", "list")
    assert listed.exit_code == 0 and "alice" in listed.stdout and token not in listed.stdout
    assert run("keys", "revoke", key.id).exit_code == 0
    assert svc.repo.keys.get_key_by_hash(key.key_hash) is None
    assert run("keys", "revoke", "NOPE").exit_code == 2
    assert run("keys", "create", "--name", "bob", "--rate", "lots").exit_code == 2
    zero = run("keys", "create", "--name", "bob", "--max-running", "0")
    assert zero.exit_code == 2 and "max-running must be at least 1" in zero.stderr


def test_keys_create_shows_the_webhook_secret_once_and_rotate_replaces_it():
    created = run("keys", "create", "--name", "erin", "--json")
    assert created.exit_code == 0, created.output
    shown = json.loads(created.stdout)
    assert shown["key"].startswith("t2v_") and shown["webhook_secret"].startswith("whsec_")
    svc = build_services(get_settings())
    assert svc.repo.keys.get_key(shown["id"]).webhook_secret == shown["webhook_secret"]
    listed = run("keys", "list")
    assert shown["webhook_secret"] not in listed.output and shown["webhook_secret"][6:] not in listed.output
    rotated = run("keys", "rotate-webhook-secret", shown["id"], "--overlap", "2h")
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    row = svc.repo.keys.get_key(shown["id"])
    assert new.startswith("whsec_") and row.webhook_secret == new and row.webhook_secret_previous == shown["webhook_secret"]
    assert 7100 < (row.webhook_previous_until - row.created_at).total_seconds() < 7300
    for bad, says in ((("NOPE",), "no active key"), ((shown["id"], "--overlap", "soon"), "not a duration"),
                      ((shown["id"], "--overlap", "31d"), "0 to 30 days")):
        out = run("keys", "rotate-webhook-secret", *bad)
        assert out.exit_code == 2 and says in out.stderr, out.output
    plain = run("keys", "create", "--name", "frank")  # without --json: stdout is the key alone, as scripts read it
    assert plain.stdout.strip().startswith("t2v_") and "whsec_" in plain.stderr and "whsec_" not in plain.stdout


def test_keys_create_with_a_cost_limit():
    created = run("keys", "create", "--name", "carol", "--max-cost", "26214400")
    assert created.exit_code == 0, created.output
    (key,) = build_services(get_settings()).repo.keys.list_keys()
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
