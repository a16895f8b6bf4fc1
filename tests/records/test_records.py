"""Generation records in MongoDB through the outbox, over the real pymongo driver and TCP (nx-27017)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from t2v.api import create_app
from t2v.cli import app as cli_app
from t2v.service import build_services
from t2v.service.keys import create_key
from t2v.service.records import open_store, record_document
from tests.api.conftest import SMALL, make_settings

FINISHED = ("succeeded", "failed", "cancelled")


def until(check, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def finished(service, job_id):
    return until(lambda: (j := service.repo.get_job(job_id)) is not None and j.status in FINISHED and j, 120,
                 f"job {job_id} to finish")


def test_each_finished_job_is_stored_once_as_its_sidecar_plus_job_fields(mongo, tiny_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, records_url=mongo.url, records_interval_s=0.1)
    service = build_services(settings, workers=1).start()
    try:
        done, _ = service.submit({"prompt": "a zebra on a skateboard", "seed": 5, "formats": ["mp4"], **SMALL})
        queued, _ = service.submit({"prompt": "never runs", **SMALL, "num_inference_steps": 40})
        service.cancel(queued.id)
        job = finished(service, done.id)
        col = mongo.collection()
        doc = until(lambda: col.find_one({"_id": done.id}), 30, "the record in MongoDB")
        sidecar = json.loads(service.file_path(job, "json").read_text())
        for key, value in sidecar.items():
            if key != "created_at":  # stored as a date, the job's own creation time
                assert doc[key] == value, key
        assert doc["job_id"] == done.id and doc["status"] == "succeeded" and doc["api_key_id"] is None
        for key in ("created_at", "finished_at"):  # BSON dates keep milliseconds
            assert abs(doc[key] - getattr(job, key)) < timedelta(milliseconds=1)
        mp4 = next(loc for loc in doc["locations"] if loc["format"] == "mp4")
        assert mp4["url"] == f"/v1/videos/{done.id}/content?format=mp4" and mp4["path"].endswith("video.mp4")
        cancelled = until(lambda: col.find_one({"_id": queued.id}), 30, "the cancelled job's record")
        assert cancelled["status"] == "cancelled" and cancelled["prompt"] == "never runs"
        assert until(lambda: service.repo.outbox.count_pending_records() == 0, 30, "an empty outbox")
        # The indexes: created_at, model, seed, and the prompt's text index (used by search)
        names = set(col.index_information())
        assert {"t2v_created_at", "t2v_model", "t2v_seed"} <= {n.replace("idx_records_", "t2v_") for n in names}
        assert [d["_id"] for d in col.find({"$text": {"$search": "zebra"}})] == [done.id]
        assert col.count_documents({}) == 2
    finally:
        service.stop()


def test_a_job_deleted_while_its_record_is_being_sent_leaves_no_record(mongo, tiny_model, tmp_path, monkeypatch):
    settings = make_settings(tmp_path / "home", tiny_model, records_url=mongo.url, records_interval_s=3600)
    service = build_services(settings, workers=1).start()
    try:
        job, _ = service.submit({"prompt": "a record in flight", **SMALL})
        finished(service, job.id)
        publisher = service.records
        real_upsert = type(publisher.store or open_store(settings)).upsert

        def upsert_then_deleted(store, documents):  # another process deletes the job as the batch is written
            done = real_upsert(store, documents)
            build_services(settings).delete(job.id)
            return done

        monkeypatch.setattr(type(publisher.store or open_store(settings)), "upsert", upsert_then_deleted)
        assert publisher.publish_once() == 1
        assert service.repo.get_job(job.id) is None
        assert mongo.collection().find_one({"_id": job.id}) is None  # no orphan record
    finally:
        service.stop()


def test_with_mongodb_down_jobs_succeed_and_records_arrive_once_after_a_restart(mongo, tiny_model, tmp_path):
    mongo.stop()
    settings = make_settings(tmp_path / "home", tiny_model, records_url=mongo.url, records_interval_s=0.1)
    service = build_services(settings, workers=1).start()
    try:
        ids = [service.submit({"prompt": f"walrus {i}", **SMALL})[0].id for i in range(2)]
        for job_id in ids:
            assert finished(service, job_id).status == "succeeded"  # MongoDB down: not the job's business
        assert service.repo.outbox.count_pending_records() == 2
        mongo.start()  # same port, same database file
        assert until(lambda: service.repo.outbox.count_pending_records() == 0, 90, "the outbox to drain")
        col = mongo.collection()
        assert sorted(d["_id"] for d in col.find({})) == sorted(ids)
    finally:
        service.stop()
    # A crash between the write and the mark sends the batch again: still one document per job.
    from t2v.service.records import RecordPublisher
    from t2v.store.outbox import jobs

    again = build_services(settings, no_workers=True)
    with again.engine.begin() as conn:
        conn.execute(jobs.update().values(records_sent_at=None))

    assert RecordPublisher(again).publish_once() == 2
    assert mongo.collection().count_documents({}) == 2 and again.repo.outbox.count_pending_records() == 0
    again.engine.dispose()


def test_search_by_key_from_the_api_and_the_cli(mongo, tiny_model, tmp_path, monkeypatch):
    settings = make_settings(tmp_path / "home", tiny_model, records_url=mongo.url, records_interval_s=0.1)
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        _, alice = create_key(service.repo.keys, "alice")
        _, bob = create_key(service.repo.keys, "bob")
        a = {"Authorization": f"Bearer {alice}"}
        b = {"Authorization": f"Bearer {bob}"}
        zebra = client.post("/v1/videos", json={"prompt": "a zebra crossing", **SMALL}, headers=a).json()["id"]
        other = client.post("/v1/videos", json={"prompt": "a red ball", **SMALL}, headers=a).json()["id"]
        theirs = client.post("/v1/videos", json={"prompt": "a zebra too", **SMALL}, headers=b).json()["id"]
        for job_id in (zebra, other, theirs):
            finished(service, job_id)
        until(lambda: service.repo.outbox.count_pending_records() == 0, 30, "the records in MongoDB")
        r = client.get("/v1/records", params={"source": "mongodb", "q": "zebra"}, headers=a)
        assert r.status_code == 200 and [d["job_id"] for d in r.json()["items"]] == [zebra]
        r = client.get("/v1/records", params={"source": "mongodb"}, headers=a)
        assert [d["job_id"] for d in r.json()["items"]] == [other, zebra]  # newest first, only alice's
        for source in ("mongodb", "sql"):  # where the files are, by API route: no path on the server
            docs = client.get("/v1/records", params={"source": source}, headers=a).json()["items"]
            locations = [loc for d in docs for loc in d["locations"]]
            assert locations and all("path" not in loc and loc["format"] for loc in locations), locations
            assert str(settings.home) not in json.dumps(docs)
        assert [d["job_id"] for d in client.get("/v1/records", params={"source": "sql", "q": "zebra"},
                                                headers=a).json()["items"]] == [zebra]
        assert [d["job_id"] for d in client.get("/v1/records", params={"source": "mongodb", "q": "zebra"},
                                                headers=b).json()["items"]] == [theirs]
        assert client.get("/v1/records", params={"source": "mongodb"}).status_code == 401
        assert client.get("/v1/records", params={"source": "oracle"}, headers=a).status_code == 422
        mongo.stop()
        r = client.get("/v1/records", params={"source": "mongodb"}, headers=a)
        assert r.status_code == 503 and mongo.url.split("//")[1] in r.json()["detail"]

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("T2V_RECORDS_URL", mongo.url)
    mongo.start()
    result = CliRunner().invoke(cli_app, ["history", "--source", "mongodb", "--json", "zebra"])
    assert result.exit_code == 0, result.output
    assert sorted(d["job_id"] for d in json.loads(result.stdout)) == sorted([zebra, theirs])  # the operator: all


def test_export_backfills_the_history_once_and_bad_urls_are_one_line(mongo, tiny_model, tmp_path, monkeypatch):
    settings = make_settings(tmp_path / "home", tiny_model)  # no record store while these ran
    service = build_services(settings, workers=1).start()
    try:
        ids = [service.submit({"prompt": f"history {i}", **SMALL})[0].id for i in range(3)]
        for job_id in ids:
            finished(service, job_id)
    finally:
        service.stop()
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    for _ in range(2):  # repeated: still one document per job
        result = runner.invoke(cli_app, ["records", "export", "--to", mongo.url])
        assert result.exit_code == 0, result.output
        assert "exported 3 record(s)" in result.output
    col = mongo.collection()
    assert sorted(d["_id"] for d in col.find({})) == sorted(ids)
    jobs = {j.id: j for j in build_services(settings).repo.outbox.iter_finished()}
    assert col.find_one({"_id": ids[0]})["prompt"] == record_document(build_services(settings), jobs[ids[0]])["prompt"]

    result = runner.invoke(cli_app, ["records", "export", "--to", "mongodb://alice:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=500"])
    assert result.exit_code == 1
    assert "alice:***@127.0.0.1:1" in result.output and "s3cret" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli_app, ["records", "export", "--to", "postgresql://x"])
    assert result.exit_code == 2 and "mongodb://" in result.output
    monkeypatch.setenv("T2V_RECORDS_URL", "http://example.com")
    result = runner.invoke(cli_app, ["history", "--source", "mongodb"])
    assert result.exit_code != 0 and "must start with mongodb://" in result.output


@pytest.mark.parametrize("url,safe", [("mongodb://u:pw@h:27017/db?x=1", "mongodb://u:***@h:27017/db?x=1"),
                                      ("mongodb+srv://u:pw@cluster.example.net", "mongodb+srv://u:***@cluster.example.net"),
                                      ("mongodb://h:27017", "mongodb://h:27017")])
def test_urls_are_shown_without_their_password(url, safe):
    from t2v.store.mongo import redact

    assert redact(url) == safe


def test_the_migration_counts_earlier_history_as_sent_and_new_endings_as_pending(tmp_path):
    from sqlalchemy import text

    from t2v.store import Repository, open_database
    from t2v.store.db import upgrade
    from t2v.store.keys import utcnow
    from t2v.store.outbox import jobs

    engine = open_database(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    upgrade(engine, "0003")
    now = utcnow()
    with engine.begin() as conn:
        for job_id, status in (("01OLDDONE", "succeeded"), ("01OLDQUEUED", "queued")):
            conn.execute(text("INSERT INTO jobs (id, status, priority, request, step, total, attempts, cancel_requested, "
                              "created_at, updated_at, finished_at, webhook_attempts, purge_requested) VALUES "
                              "(:id, :status, 0, '{}', 0, 0, 0, 0, :now, :now, :fin, 0, 0)"),
                         {"id": job_id, "status": status, "now": now.replace(tzinfo=None),
                          "fin": now.replace(tzinfo=None) if status == "succeeded" else None})
    upgrade(engine)
    repo = Repository(engine)
    assert repo.outbox.count_pending_records() == 0  # the old history: `t2v records export` sends it
    with engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == "01OLDQUEUED").values(status="cancelled", finished_at=now))
    assert [j.id for j in repo.outbox.pending_records()] == ["01OLDQUEUED"]
    repo.outbox.mark_records_sent(["01OLDQUEUED"])
    assert repo.outbox.count_pending_records() == 0
    engine.dispose()


def test_t2v_serve_with_keys_writes_records_and_serves_them_to_their_key(mongo, tiny_model, tmp_path, tmp_path_factory):
    from t2v.client import Client
    from t2v.client.errors import ServerUnavailable
    from tests.servers import make_keys, serve

    home = tmp_path / "serve-home"
    home.mkdir()
    key, other = make_keys(home, ("main", {}), ("other", {}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp(), workers=2,
               env={"T2V_RECORDS_URL": mongo.url, "T2V_RECORDS_INTERVAL_S": "0.2"}) as s:
        client = Client(s.url, key, retries=0)
        jobs = [client.submit(f"an otter number {i}", **SMALL) for i in range(2)]
        for job in jobs:
            assert client.wait(job.id, timeout=120).status == "succeeded"
        records = until(lambda: len(r := client.records(source="mongodb")) == 2 and r, 60, "two records")
        assert {r["job_id"] for r in records} == {j.id for j in jobs} and {r["api_key_id"] for r in records} != {None}
        assert client.records("otter", source="mongodb", limit=1)[0]["job_id"] == jobs[1].id
        assert Client(s.url, other).records(source="mongodb") == []
        mongo.stop()
        with pytest.raises(ServerUnavailable):
            client.records(source="mongodb")
        third = client.submit("an otter while MongoDB is down", **SMALL)
        assert client.wait(third.id, timeout=120).status == "succeeded"
        mongo.start()
        until(lambda: len(client.records(source="mongodb")) == 3, 90, "the third record after the restart")
    assert mongo.collection().count_documents({}) == 3


def test_records_holding_what_mongodb_refuses_are_stored_cleaned_and_do_not_stop_the_others(mongo):
    """A record can carry what a client wrote (a post job keeps the comment embedded in the uploaded clip): field
    names with a leading $, a dot or a NUL, or a document over 16 MiB. Each is stored cleaned or cut, in the same
    batch as the records beside it, instead of failing the batch (which the outbox would retry for ever)."""
    from datetime import datetime, timezone

    from t2v.store.mongo import MongoRecords

    now = datetime.now(timezone.utc)
    store = MongoRecords(mongo.url, "t2v", "hostile")
    docs = [{"$x": 1, "_id": "A", "prompt": "a", "created_at": now, "nested": {"$where": "1", "a.b": 2, "c\x00": 3}},
            {"_id": "B", "prompt": "b" * 5000, "created_at": now, "seed": 7, "comment": "y" * (17 * 2**20)},
            {"_id": "C", "prompt": "an ordinary record", "created_at": now, "seed": 3}]
    assert store.upsert(docs) == 3
    col = mongo.collection("t2v", "hostile")
    a, b, c = (col.find_one({"_id": i}) for i in "ABC")
    assert a["_x"] == 1 and a["nested"] == {"_where": "1", "a_b": 2, "c": 3}
    assert b["record_truncated"] is True and b["seed"] == 7 and b["prompt"] == "b" * 1000 and "comment" not in b
    assert c["prompt"] == "an ordinary record" and "record_truncated" not in c
    store.close()
