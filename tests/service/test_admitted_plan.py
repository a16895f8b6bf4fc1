"""A job keeps the plan it was admitted with: the job row holds it from the submit, a worker on the machine that
admitted it runs it without planning again, one on another machine plans again and its record says so, and
changing a queued job's request admits and plans it again."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from t2v.runner import plan as run_plan
from t2v.service import build_services
from t2v.service.worker import Worker
from t2v.store.tables import Job
from tests.api.conftest import SMALL, make_settings

REQUEST = {"prompt": "a red square", **SMALL, "seed": 3}


@pytest.fixture
def service(tmp_path, tiny_model):
    """A service whose jobs run only when a test runs them (:meth:`Worker.run_one`), with a fixed memory budget
    (the machine's fingerprint does not move with the free memory between submit and run). No job here is lost, so
    none may be taken back for a heartbeat a loaded machine delays (the tests' 2 s would)."""
    api = build_services(make_settings(tmp_path / "home", tiny_model, memory_budget_gb=8, stale_after_s=60),
                         no_workers=True).start()
    yield api
    api.stop()


def stored_plan(service, job_id: str):
    """The ``plan`` column of the job's row, read with SQL."""
    with service.engine.connect() as conn:
        return conn.execute(select(Job.__table__.c.plan).where(Job.__table__.c.id == job_id)).scalar_one()


def run_queued(service):
    """Run the oldest queued job in this thread; its row once it has ended."""
    job_id = Worker(service, 0).run_one()
    assert job_id is not None, "no job was queued"
    job = service.get(job_id)
    assert job.status == "succeeded", job.error
    return job


def test_the_row_holds_the_plan_it_was_admitted_with(service):
    job, _ = service.submit(REQUEST)
    plan = stored_plan(service, job.id)
    assert plan is not None and service.get(job.id).plan == plan
    assert plan["memory"] in ("speed", "balanced", "low") and plan["family"] == "modelscope"
    assert plan["machine"] == {"device": "cpu", "dtype": "fp32", "budget_gb": 8}
    assert plan["prediction"]["plan"] == plan["memory"] and plan["prediction"]["peak_bytes"] > 0
    assert "replanned" not in plan
    json.dumps(plan, allow_nan=False)  # strict JSON: what PostgreSQL's jsonb takes


def test_a_worker_on_the_same_machine_does_not_plan_again(service, monkeypatch):
    job, _ = service.submit(REQUEST)
    admitted = stored_plan(service, job.id)

    def no_planning(*args, **kwargs):
        raise AssertionError("the worker planned the memory again on the machine that admitted the job")

    monkeypatch.setattr(run_plan, "choose", no_planning)
    done = run_queued(service)
    record_plan = done.result["plan"]
    assert "replanned" not in record_plan
    kept = {k: v for k, v in admitted.items() if k not in ("prediction", "source")}
    assert {k: v for k, v in record_plan.items() if k != "source"} == kept
    assert done.result["memory_plan"]["plan"] == admitted["memory"]
    assert done.result["memory_plan"]["predicted_peak_mb"] == admitted["predicted_peak_mb"]


def test_a_worker_on_another_machine_plans_again_and_says_so(service):
    job, _ = service.submit(REQUEST)
    elsewhere = {**stored_plan(service, job.id), "machine": {"device": "cuda", "dtype": "bf16", "budget_gb": 70}}
    service.repo.controls.change_queued(job.id, request=job.request, plan=elsewhere)
    record_plan = run_queued(service).result["plan"]
    assert record_plan["replanned"] == "admitted on cuda/bf16, 70 GiB, run on cpu/fp32, 8 GiB"
    assert record_plan["machine"] == {"device": "cpu", "dtype": "fp32", "budget_gb": 8}


def test_changing_a_queued_job_admits_and_plans_it_again(service):
    job, _ = service.submit(REQUEST)
    before = stored_plan(service, job.id)
    changed = service.steering.change(job.id, {"num_frames": 8, "width": 48, "height": 48})
    after = stored_plan(service, job.id)
    assert changed.request["num_frames"] == 8 and changed.plan == after
    assert after["prediction"]["peak_bytes"] != before["prediction"]["peak_bytes"]
    service.steering.change(job.id, {}, priority=5)  # a new priority only: the plan stays
    assert stored_plan(service, job.id) == after


def test_a_batch_keeps_each_jobs_plan(service):
    batch = service.batches.submit_batch([REQUEST, {**REQUEST, "num_frames": 8}])["batch"]
    plans = {service.get(job_id).request["num_frames"]: stored_plan(service, job_id) for job_id in batch["job_ids"]}
    assert sorted(plans) == [4, 8] and all(p is not None and p["memory"] for p in plans.values())
    assert plans[4]["prediction"]["peak_bytes"] < plans[8]["prediction"]["peak_bytes"]
