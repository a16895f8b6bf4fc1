"""The OpenAPI document is the REST contract: every operation declares its answers' media types and schemas, and
every error it can answer with the one error body; the answers the server really sends match it.

The fuzzing in test_schemathesis.py checks the answers to generated requests against the document; the tests
here walk the document itself, and send the requests a fuzzer cannot make (another Host, another site's page,
a missing key, a body too large, an open event stream over its key's cap).
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.api.responses import ErrorBody
from t2v.api.streams import StreamLease
from t2v.service.keys import create_key
from t2v.settings import Settings
from tests.api.conftest import SMALL

ERROR_REF = "#/components/schemas/ErrorBody"
VIDEO_TYPES = {"video/mp4", "video/webm", "image/gif"}
FILE_ROUTES = {"/v1/videos/{job_id}/content": VIDEO_TYPES, "/v1/videos/{job_id}/figures/{name}": {"image/png"},
               "/v1/videos/{job_id}/preview": {"image/png"}, "/v1/videos/{job_id}/poster": {"image/png"}}


class _NoService:
    """Stands in for JobService: the document is built from the routes alone, with no server running."""


@pytest.fixture(scope="module")
def spec():
    return create_app(Settings(home="/nonexistent/t2v-schema-only"), service=_NoService(), start_workers=False).openapi()


def operations(spec):
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def schema_of(response, media="application/json"):
    return response.get("content", {}).get(media, {}).get("schema")


def test_the_document_lists_every_route_and_serializes(spec):
    assert len(operations(spec)) >= 20
    assert json.loads(json.dumps(spec)) == spec


def test_every_operation_declares_its_errors_with_the_one_error_body(spec):
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # the 422s are ErrorBody too
    for method, path, op in operations(spec):
        errors = {int(code): r for code, r in op["responses"].items() if int(code) >= 400}
        assert set(errors) - {422, 416}, f"{method} {path} declares no error but 422"
        for code, response in errors.items():
            if code == 416 or (path, code) == ("/readyz", 503):  # no body; the readiness state
                continue
            assert set(response["content"]) == {"application/json"}, (method, path, code)
            assert schema_of(response) == {"$ref": ERROR_REF}, (method, path, code)
        if op.get("parameters") or op.get("requestBody"):
            assert 422 in errors, f"{method} {path} takes input but declares no 422"


def test_no_success_answer_is_untyped(spec):
    for method, path, op in operations(spec):
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert successes, (method, path)
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response, (method, path)
                continue
            assert response.get("content"), f"{method} {path} {code} declares no media type"
            for media, entry in response["content"].items():
                schema = entry.get("schema") or entry.get("itemSchema")
                assert schema, f"{method} {path} {code} {media}: no schema"
                assert "$ref" in schema or "type" in schema, f"{method} {path} {code} {media}: untyped {schema}"


def test_files_declare_their_media_types_and_ranges(spec):
    for path, types in FILE_ROUTES.items():
        op = spec["paths"][path]["get"]
        for code in ("200", "206"):
            content = op["responses"][code]["content"]
            assert set(content) == types, (path, code)
            assert all(c["schema"] == {"type": "string", "format": "binary"} for c in content.values())
        assert "Content-Range" in op["responses"]["206"]["headers"] and "416" in op["responses"]
        assert "307" in op["responses"]  # T2V_STORAGE_PRESIGN=1
        assert {(p["in"], p["name"]) for p in op["parameters"]} >= {("path", "job_id"), ("header", "Range")}


def test_json_routes_declare_their_models(spec):
    def ref(path, method, code, model):
        assert schema_of(spec["paths"][path][method]["responses"][code]) == {"$ref": f"#/components/schemas/{model}"}

    ref("/v1/videos/{job_id}/metadata", "get", "200", "RunRecord")
    for path in ("/v1/videos", "/v1/sequences", "/v1/post"):
        ref(path, "post", "202", "Job")
        ref(path, "post", "200", "Job")  # an idempotent retry
        assert "Location" in spec["paths"][path]["post"]["responses"]["202"]["headers"]
    ref("/v1/assets", "post", "201", "Asset")
    ref("/v1/assets/{asset_id}", "get", "200", "Asset")
    assert spec["paths"]["/v1/assets/{asset_id}"]["delete"]["responses"]["204"] == {"description": "Deleted"}
    ref("/healthz", "get", "200", "Health")
    ref("/readyz", "get", "200", "Readiness")
    ref("/readyz", "get", "503", "Readiness")
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain", "application/openmetrics-text"}


def test_the_event_stream_declares_its_events(spec):
    op = spec["paths"]["/v1/videos/{job_id}/events"]["get"]
    assert set(op["responses"]["200"]["content"]) == {"text/event-stream"}
    item = op["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert item["properties"]["event"]["enum"] == ["progress", "succeeded", "failed", "cancelled", "error"]
    data = item["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert {"$ref": "#/components/schemas/Job"} in data["contentSchema"]["anyOf"]
    assert {"$ref": ERROR_REF} in data["contentSchema"]["anyOf"]
    assert ("header", "Last-Event-ID") in {(p["in"], p["name"]) for p in op["parameters"]}
    assert {"404", "429"} <= set(op["responses"])


# -- the answers the server really sends --------------------------------------------------------------------


def declared(spec, method: str, path: str, status: int) -> bool:
    return str(status) in spec["paths"][path][method.lower()]["responses"]


def assert_error(spec, response, method, path, status):
    """``response`` is the ``status`` error that ``method path`` declares, with the error body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = ErrorBody.model_validate(response.json())
    assert body.detail
    assert declared(spec, method, path, status), f"{method} {path} answered {status}, which it does not declare"
    return body


def test_errors_the_fuzzer_cannot_make_are_declared_error_bodies(spec, settings):
    guarded = settings.model_copy(update={"max_body_bytes": 4096, "trusted_hosts": "api.example"})
    with TestClient(create_app(guarded, start_workers=False), base_url="http://api.example") as client:
        assert_error(spec, client.get("/v1/videos", headers={"Host": "evil.example"}), "GET", "/v1/videos", 400)
        assert_error(spec, client.get("/healthz", headers={"Host": "evil.example"}), "GET", "/healthz", 400)
        cross_site = client.post("/v1/videos", json={"prompt": "x", **SMALL}, headers={"Origin": "https://evil.example"})
        assert_error(spec, cross_site, "POST", "/v1/videos", 403)
        big = client.post("/v1/videos", content=b'{"prompt": "' + b"x" * 5000 + b'"}',
                          headers={"content-type": "application/json"})
        assert_error(spec, big, "POST", "/v1/videos", 413)
        text = client.post("/v1/videos", content=b"prompt=x", headers={"content-type": "text/plain"})
        assert_error(spec, text, "POST", "/v1/videos", 415)
        job = client.post("/v1/videos", json={"prompt": "a blue square", **SMALL}).json()
        early = client.get(f"/v1/videos/{job['id']}/content")  # still queued
        assert_error(spec, early, "GET", "/v1/videos/{job_id}/content", 409)
        assert_error(spec, client.get(f"/v1/videos/{job['id']}/metadata"), "GET", "/v1/videos/{job_id}/metadata", 409)
        missing = client.get("/v1/videos/01NOSUCHJ0B000000000000000/figures/contact_sheet")
        assert_error(spec, missing, "GET", "/v1/videos/{job_id}/figures/{name}", 404)
        bad = assert_error(spec, client.post("/v1/videos", json={"prompt": "x", "width": 63}), "POST", "/v1/videos", 422)
        assert bad.detail[0].loc == ["body", "width"]


def test_a_missing_key_and_a_stream_over_its_cap_are_declared_error_bodies(spec, settings, monkeypatch):
    app = create_app(settings.model_copy(update={"max_streams_per_key": 1}), start_workers=False)
    _, token = create_key(app.state.service.repo.keys, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    monkeypatch.setattr(StreamLease, "RENEW_S", 0.2)
    events = "/v1/videos/{job_id}/events"
    with TestClient(app) as client:
        keyless = client.get("/v1/models")
        assert_error(spec, keyless, "GET", "/v1/models", 401)
        assert keyless.headers["www-authenticate"] == "Bearer"
        job = client.post("/v1/videos", json={"prompt": "a blue square", **SMALL}, headers=auth).json()
        url = f"/v1/videos/{job['id']}/events"
        with client.stream("GET", url, headers=auth) as first:  # a queued job: the stream stays open
            lines = first.iter_lines()  # kept: a dropped iterator closes its stream
            assert first.status_code == 200 and next(lines) == "event: progress"
            over = client.get(url, headers=auth)
            assert_error(spec, over, "GET", events, 429)
            assert "limit 1" in over.json()["detail"] and over.headers["retry-after"]
        assert_error(spec, client.get("/v1/videos/01NOSUCHJ0B000000000000000/events", headers=auth), "GET", events, 404)
        deadline = time.monotonic() + 10
        while True:  # the closed stream's slot is freed (not left to run out with its lease)
            client.delete(f"/v1/videos/{job['id']}", headers=auth)  # cancelled: a new stream ends at once
            again = client.get(url, headers=auth)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert again.status_code == 200, again.text


def test_the_event_stream_keeps_its_wire_format(idle_client):
    """What clients before the schema parse: ``event:``, the job as JSON ``data:`` and the state's ``id:``."""
    job = idle_client.post("/v1/videos", json={"prompt": "a blue square", **SMALL}).json()
    cancelled = idle_client.delete(f"/v1/videos/{job['id']}").json()
    r = idle_client.get(f"/v1/videos/{job['id']}/events")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
    lines = r.text.split("\n")
    assert lines[0] == "event: cancelled" and lines[-2:] == ["", ""], r.text
    fields = dict(line.split(": ", 1) for line in lines if line)
    assert set(fields) == {"event", "data", "id"}
    assert fields["id"] == "cancelled.-.0.-"
    assert json.loads(fields["data"]) == cancelled
    assert fields["data"] == json.dumps(json.loads(fields["data"]))  # written as json.dumps writes it
    resumed = idle_client.get(f"/v1/videos/{job['id']}/events", headers={"Last-Event-ID": fields["id"]})
    assert resumed.status_code == 200 and resumed.text == ""  # nothing new since the last event seen


def test_file_ranges_are_answered_alike_for_local_files(client):
    """A malformed or multiple Range gets the whole file (as from object storage), never a plain-text 400."""
    job = client.post("/v1/videos", json={"prompt": "a red circle", **SMALL}).json()
    deadline = time.monotonic() + 120
    while client.get(f"/v1/videos/{job['id']}").json()["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    url = f"/v1/videos/{job['id']}/content"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    size = len(whole.content)
    for header in ("bytes=abc", "items=0-1", "bytes=0-1,4-5", "bytes=-"):
        r = client.get(url, headers={"Range": header})
        assert (r.status_code, r.content) == (200, whole.content), header
    part = client.get(url, headers={"Range": "bytes=-10"})
    assert part.status_code == 206 and part.content == whole.content[-10:]
    assert part.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    past = client.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}" and not past.content
    poster = client.get(f"/v1/videos/{job['id']}/poster", headers={"Range": "bytes=0-7"})
    assert poster.status_code == 206 and poster.content == b"\x89PNG\r\n\x1a\n"


def test_metrics_are_prometheus_text_or_openmetrics(idle_client):
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(2):
        idle_client.post("/v1/videos", json={"prompt": "a blue square", **SMALL})
    r = idle_client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    jobs = {s.labels["status"]: s.value for s in families["t2v_jobs"].samples}
    assert jobs == {"queued": 2, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert families["t2v_queue_depth"].samples[0].value == 2
    assert families["t2v_step_seconds"].type == families["t2v_generation_seconds"].type == "summary"
    om = idle_client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")
