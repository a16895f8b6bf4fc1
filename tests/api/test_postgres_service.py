"""The whole service on PostgreSQL: API, workers (SKIP LOCKED claims) and results."""

from __future__ import annotations

from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from tests.api.conftest import SMALL, wait_for


def test_jobs_run_to_completion_on_postgresql(pg_database, settings):
    service = build_services(settings.model_copy(update={"database_url": pg_database}), workers=2)
    assert service.engine.dialect.name == "postgresql"
    with TestClient(create_app(settings, service=service)) as client:
        ids = [client.post("/v1/videos", json={"prompt": f"pg job {i}", **SMALL, "seed": i}).json()["id"]
               for i in range(4)]
        for job_id in ids:
            job = wait_for(client, job_id)
            assert job["status"] == "succeeded" and job["attempts"] == 1, job["error"]
        assert client.get(f"/v1/videos/{ids[0]}/content").status_code == 200
        assert client.get("/metrics").text.count('t2v_jobs{status="succeeded"} 4') == 1
    assert service.repo.counts_by_status()["succeeded"] == 4
