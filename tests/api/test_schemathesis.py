"""Property-based fuzzing of every operation in /openapi.json and /openai/v1/openapi.json: no input may produce a 5xx, and every answer is
one the document declares (its status, its media type, a body of its schema: an error is the shared ErrorBody).

Schemathesis reads the OpenAPI document from the ASGI app (no server, no network) and generates
valid and invalid requests for each operation: one test per operation, a bounded, derandomized
number of examples each. Requests go to an app over the tiny model whose workers never
start, so submitted jobs stay queued and nothing is generated; each operation runs once on SQLite
and once on PostgreSQL (skipped where no PostgreSQL server binaries are installed), which refuses
text the other accepts (NUL characters). Schemathesis's coverage phase (the schema's boundary values
and each kind of invalid input, about 600 cases for ``POST /v1/videos``) runs on PostgreSQL, the
stricter store; on SQLite the examples and the random fuzzing run.

``GET /v1/videos/{job_id}/events`` streams until its job finishes, which a queued job never does
here, so it is left out of the fuzzing and checked directly below.

The schema is loaded at import time from an app built over a stand-in service (the OpenAPI document
depends only on the routes), because ``schemathesis.pytest.from_fixture`` needs ``Node._nodeid``,
which pytest 9.2 no longer has; each case is then sent to the module's app for that backend with ``app=``.

Adds about a minute: schemathesis sends its generated cases to every route of both documents, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hyp_settings  # noqa: E402
from schemathesis.checks import (content_type_conformance, not_a_server_error,  # noqa: E402
                                 response_schema_conformance, status_code_conformance)

from t2v.api import create_app  # noqa: E402
from t2v.service import build_services  # noqa: E402
from t2v.settings import Settings  # noqa: E402
from tests.api.conftest import make_settings  # noqa: E402

EVENTS_PATH = "/v1/videos/{job_id}/events"
MAX_EXAMPLES = int(os.environ.get("T2V_TEST_FUZZ_EXAMPLES", "25"))  # raise it for a deeper local run


class _NoService:
    """Stands in for JobService while the OpenAPI document is read: that route never calls it."""


# JSON Lines (POST /v1/batches takes them as application/x-ndjson): sent as the text they are
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

_DOCUMENTS = create_app(Settings(home="/nonexistent/t2v-schema-only"), service=_NoService(), start_workers=False)


def _schemas(coverage: bool):
    """t2v's document (without the event stream) and the OpenAI-style API's own (its operations are served under
    /openai/v1, the document's server); without ``coverage``, Schemathesis's coverage phase is off."""
    found = (schemathesis.openapi.from_asgi("/openapi.json", _DOCUMENTS).exclude(path=EVENTS_PATH),
             schemathesis.openapi.from_asgi("/openai/v1/openapi.json", _DOCUMENTS))
    for each in found:
        each.config.phases.coverage.enabled = coverage
    return found


schema, openai_schema = _schemas(coverage=True)  # on PostgreSQL
sqlite_schema, sqlite_openai_schema = _schemas(coverage=False)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def idle_app(request, tiny_model, tmp_path_factory):
    """The app over a real JobService, no workers: the tiny model, SQLite in a tmp home or a fresh
    PostgreSQL database. One per backend for the module: jobs the fuzzer queues pile up in it."""
    settings = make_settings(tmp_path_factory.mktemp("fuzz-home"), tiny_model, offline=True)
    url = None
    if request.param == "postgresql":
        import psycopg

        server = request.getfixturevalue("pg_server")  # skips where PostgreSQL is not installed
        name = f"t2v_fuzz_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server.admin_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = server.url(name)
    app = create_app(settings, service=build_services(settings, database_url=url), start_workers=False)
    yield app
    app.state.service.stop()
    if url is not None:
        with psycopg.connect(server.admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FUZZ = hyp_settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
ON_POSTGRESQL = pytest.mark.parametrize("idle_app", ["postgresql"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("idle_app", ["sqlite"], indirect=True)


def check_case(case, idle_app):
    response = case.call(app=idle_app)
    checks = list(CHECKS)
    if case.operation.path == "/readyz" and response.status_code == 503:
        # No worker runs here, so "not ready" is the right answer: 503 with the state, by design (and declared).
        assert case.method.upper() == "GET" and response.json()["ready"] is False, response.text
        checks.remove(not_a_server_error)
    case.validate_response(response, checks=checks)


@ON_POSTGRESQL
@schema.parametrize()
@FUZZ
def test_no_server_errors(case, idle_app):
    check_case(case, idle_app)


@ON_SQLITE
@sqlite_schema.parametrize()
@FUZZ
def test_no_server_errors_on_sqlite(case, idle_app):
    check_case(case, idle_app)


@ON_POSTGRESQL
@openai_schema.parametrize()
@FUZZ
def test_no_server_errors_on_the_openai_style_routes(case, idle_app):
    """The same on /openai/v1: no 5xx, and every answer (errors are OpenAI's 400 error object) as declared."""
    case.validate_response(case.call(app=idle_app), checks=CHECKS)


@ON_SQLITE
@sqlite_openai_schema.parametrize()
@FUZZ
def test_no_server_errors_on_the_openai_style_routes_on_sqlite(case, idle_app):
    case.validate_response(case.call(app=idle_app), checks=CHECKS)


def test_every_openai_style_operation_is_fuzzed(idle_app):
    mounted = next(r for r in idle_app.routes if getattr(r, "path", None) == "/openai/v1")
    served = {(m.upper(), p) for p, ops in mounted.app.openapi()["paths"].items() for m in ops}
    fuzzed = {(op.method.upper(), op.path) for op in (r.ok() for r in openai_schema.get_all_operations())}
    assert served == fuzzed and ("POST", "/videos") in fuzzed and ("POST", "/videos/{video_id}/remix") in fuzzed


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


@pytest.fixture
def idle_api(idle_app):
    with TestClient(idle_app) as c:
        yield c


def test_events_of_unknown_and_cancelled_jobs(idle_api):
    """The event stream left out above: 404 before streaming; a cancelled job's stream ends at once."""
    assert idle_api.get("/v1/videos/nope/events").status_code == 404
    job = idle_api.post("/v1/videos", json={"prompt": "a blue square", "num_frames": 4, "width": 32,
                                            "height": 32, "num_inference_steps": 2}).json()
    assert idle_api.delete(f"/v1/videos/{job['id']}").json()["status"] == "cancelled"
    r = idle_api.get(f"/v1/videos/{job['id']}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("event: ") for line in r.text.splitlines() if line.startswith("event: ")]
    assert events == ["cancelled"]
    assert '"status": "cancelled"' in r.text


def _strict_json(response):
    """The body as strict JSON: UTF-8 without lone surrogates, no NaN/Infinity."""
    def refuse(name):
        raise AssertionError(f"{name} in the response body")
    return json.loads(response.content.decode("utf-8"), parse_constant=refuse)


# Inputs found to answer 500 (the fuzzer reaches the NUL ones on PostgreSQL with more examples;
# JSON generators never produce NaN or lone surrogates): each is now a 422 naming its field.
BAD_BODIES = {
    "nul-prompt": (b'{"prompt": "a\\u0000b"}', "prompt"),
    "nul-negative": (b'{"prompt": "x", "negative_prompt": "\\u0000"}', "negative_prompt"),
    "nul-idempotency": (b'{"prompt": "x", "idempotency_key": "k\\u0000"}', "idempotency_key"),
    "nul-callback": (b'{"prompt": "x", "callback_url": "http://example.com/\\u0000"}', "callback_url"),
    "lone-surrogate": (b'{"prompt": "\\ud800"}', "prompt"),
    "nan": (b'{"prompt": "x", "fps": NaN}', "fps"),
    "infinity": (b'{"prompt": "x", "guidance_scale": Infinity}', "guidance_scale"),
    "unknown-user-home": (b'{"prompt": "x", "model": "~no-such-user-t2v/model"}', "model"),
    "name-too-long": (b'{"prompt": "x", "model": "' + b"m" * 5000 + b'"}', "model"),
    "path-too-long": (b'{"prompt": "x", "model": "/tmp/' + b"m" * 300 + b'"}', "model"),
}


def test_bad_bodies_are_422_naming_the_field(idle_api):
    for name, (body, field) in BAD_BODIES.items():
        r = idle_api.post("/v1/videos", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (name, r.text)
        assert _strict_json(r)["detail"][0]["loc"] == ["body", field], name


def test_nul_in_ids_and_queries(idle_api):
    for method, url, status in [
        ("GET", "/v1/videos/%00", 404), ("GET", "/v1/videos/%00/content", 404), ("GET", "/v1/videos/%00/metadata", 404),
        ("GET", "/v1/videos/%00/events", 404), ("DELETE", "/v1/videos/%00", 404),
        ("GET", "/v1/videos?cursor=%00", 422), ("GET", "/v1/videos?q=%00", 200),
    ]:
        r = idle_api.request(method, url)
        assert r.status_code == status, (method, url, r.text)
        _strict_json(r)
