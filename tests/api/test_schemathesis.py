"""Property-based fuzzing of every operation in /openapi.json: no input may produce a 5xx.

Schemathesis reads the OpenAPI document from the ASGI app (no server, no network) and generates
valid and invalid requests for each operation: one test per operation, a bounded, derandomized
number of examples each. Every request goes to a fresh app over the tiny model whose workers never
start, so submitted jobs stay queued and nothing is generated; each operation runs once on SQLite
and once on PostgreSQL (skipped where no PostgreSQL server binaries are installed), which refuses
text the other accepts (NUL characters).

``GET /v1/videos/{job_id}/events`` streams until its job finishes, which a queued job never does
here, so it is left out of the fuzzing and checked directly below.

The schema is loaded at import time from an app built over a stand-in service (the OpenAPI document
depends only on the routes), because ``schemathesis.pytest.from_fixture`` needs ``Node._nodeid``,
which pytest 9.2 no longer has; each case is then sent to the per-test app with ``app=``.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hyp_settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from t2v.api import create_app  # noqa: E402
from t2v.service import JobService  # noqa: E402
from t2v.settings import Settings  # noqa: E402

EVENTS_PATH = "/v1/videos/{job_id}/events"
MAX_EXAMPLES = 25


class _NoService:
    """Stands in for JobService while the OpenAPI document is read: that route never calls it."""


schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(home="/nonexistent/t2v-schema-only"), service=_NoService(), start_workers=False)
).exclude(path=EVENTS_PATH)


@pytest.fixture(params=["sqlite", "postgresql"])
def idle_app(request, settings):
    """The app over a real JobService (the tiny model; SQLite in tmp or a fresh PostgreSQL database), no workers."""
    url = request.getfixturevalue("pg_database") if request.param == "postgresql" else None
    app = create_app(settings, service=JobService(settings, database_url=url), start_workers=False)
    yield app
    app.state.service.stop()


@schema.parametrize()
@hyp_settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, idle_app):
    if case.operation.path == "/readyz":
        # No worker runs here, so "not ready" is the right answer: 503 with the state, by design.
        response = case.call(app=idle_app)
        assert response.status_code == 503 and response.json()["ready"] is False, response.text
        return
    case.call_and_validate(app=idle_app, checks=[not_a_server_error])


def test_every_operation_but_the_event_stream_is_fuzzed(idle_app):
    """A new route is fuzzed without edits here; only the event stream is left out."""
    paths = idle_app.openapi()["paths"]
    served = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    fuzzed = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert served - fuzzed == {("GET", EVENTS_PATH)}
    assert {("POST", "/v1/videos"), ("GET", "/v1/videos"), ("GET", "/v1/videos/{job_id}"),
            ("DELETE", "/v1/videos/{job_id}"), ("GET", "/v1/videos/{job_id}/content"),
            ("GET", "/v1/videos/{job_id}/metadata"), ("GET", "/v1/models"), ("GET", "/healthz"),
            ("GET", "/readyz"), ("GET", "/metrics")} <= fuzzed


def test_events_of_unknown_and_cancelled_jobs(idle_client):
    """The event stream left out above: 404 before streaming; a cancelled job's stream ends at once."""
    assert idle_client.get("/v1/videos/nope/events").status_code == 404
    job = idle_client.post("/v1/videos", json={"prompt": "a blue square", "num_frames": 4, "width": 32,
                                               "height": 32, "num_inference_steps": 2}).json()
    assert idle_client.delete(f"/v1/videos/{job['id']}").json()["status"] == "cancelled"
    r = idle_client.get(f"/v1/videos/{job['id']}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("event: ") for line in r.text.splitlines() if line.startswith("event: ")]
    assert events == ["cancelled"]
    assert '"status": "cancelled"' in r.text
