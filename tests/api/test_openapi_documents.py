"""Both OpenAPI documents (t2v's ``/openapi.json`` and the OpenAI-style ``/openai/v1/openapi.json``) are typed
contracts a code generator can use: every request body and every JSON answer is a named component, files are
declared with their media types, and the errors are declared with the bodies the server really sends."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.api.openai_models import CreateVideoBody, ErrorResponse, ExtendVideoBody, RemixVideoBody
from t2v.api.responses import ErrorBody
from t2v.api.schemas import VideoChange, VideoCreate
from t2v.settings import Settings

REF = re.compile(r"^#/components/schemas/[A-Za-z][A-Za-z0-9_]*$")
BINARY = {"type": "string", "format": "binary"}
#: Text answers that are not files: Prometheus' formats and the event stream (its items are typed).
TEXT = {"text/plain", "application/openmetrics-text", "text/event-stream"}


class _NoService:
    """Stands in for JobService: the documents are built from the routes alone."""


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(home="/nonexistent/t2v-schema-only"), service=_NoService(), start_workers=False)


@pytest.fixture(scope="module")
def documents(app):
    mounted = next(r for r in app.routes if getattr(r, "path", None) == "/openai/v1")
    return {"t2v": app.openapi(), "openai": mounted.app.openapi()}


def operations(spec):
    return [(f"{method.upper()} {path}", op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def named(spec, schema) -> str:
    """The component ``schema`` refers to (it must be one the document declares)."""
    assert REF.match(schema.get("$ref", "")), f"not a named component: {schema}"
    name = schema["$ref"].rsplit("/", 1)[1]
    assert name in spec["components"]["schemas"], name
    return name


@pytest.mark.parametrize("which", ["t2v", "openai"])
def test_every_reference_resolves_and_every_component_is_used(documents, which):
    spec = documents[which]
    text = json.dumps(spec)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert refs == set(spec["components"]["schemas"])
    assert not {"HTTPValidationError", "ValidationError"} & refs  # FastAPI's 422, which neither API answers with
    assert not [n for n in refs if n.startswith("Body_")], "a body named after its route"


@pytest.mark.parametrize("which", ["t2v", "openai"])
def test_every_success_is_a_named_component_or_a_file(documents, which):
    spec = documents[which]
    for op_name, op in operations(spec):
        successes = {c: r for c, r in op["responses"].items() if c.startswith("2")}
        assert successes, op_name
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response, op_name
                continue
            assert response.get("content"), f"{op_name} {code}: no media type"
            for media, entry in response["content"].items():
                if media == "application/json":
                    named(spec, entry["schema"])
                elif media in TEXT:
                    assert entry.get("schema", {}).get("type") == "string" or entry.get("itemSchema"), op_name
                else:
                    assert re.match(r"^(video|image)/", media) and entry["schema"] == BINARY, (op_name, media)


@pytest.mark.parametrize("which", ["t2v", "openai"])
def test_every_request_body_is_a_named_component(documents, which):
    spec = documents[which]
    bodies = {op_name: op["requestBody"] for op_name, op in operations(spec) if "requestBody" in op}
    assert len(bodies) >= 3
    for op_name, body in bodies.items():
        for media, entry in body["content"].items():
            if media in ("application/json", "multipart/form-data"):
                named(spec, entry["schema"])
            else:  # JSON Lines: text, one body a line
                assert entry["schema"]["type"] == "string", (op_name, media)
    names = {k: {m: e["schema"].get("$ref", "").rsplit("/", 1)[-1] for m, e in b["content"].items()}
             for k, b in bodies.items()}
    if which == "t2v":
        assert names["POST /v1/videos"] == {"application/json": "VideoCreate", "multipart/form-data": "VideoCreateForm"}
        assert names["PATCH /v1/videos/{job_id}"] == {"application/json": "VideoChange"}
        assert names["POST /v1/batches"]["application/json"] == "BatchCreate"
        assert names["POST /v1/assets"] == {"multipart/form-data": "AssetUpload"}
    else:
        assert names["POST /videos"] == {"application/json": "CreateVideoBody", "multipart/form-data": "CreateVideoForm"}
        assert set(bodies) == {"POST /videos", "POST /videos/{video_id}/remix", "POST /videos/extensions"}
        form = spec["components"]["schemas"]["CreateVideoForm"]["properties"]["input_reference"]
        assert BINARY in form["anyOf"]


def test_t2v_errors_are_its_error_body(documents):
    spec = documents["t2v"]
    for op_name, op in operations(spec):
        for code, response in op["responses"].items():
            if int(code) < 400 or code == "416" or (op_name, code) == ("GET /readyz", "503"):
                continue
            assert named(spec, response["content"]["application/json"]["schema"]) == "ErrorBody", (op_name, code)


def test_openai_errors_are_the_error_object_and_never_422(documents):
    spec = documents["openai"]
    for op_name, op in operations(spec):
        codes = {int(c) for c in op["responses"]}
        assert 422 not in codes and {400, 401} <= codes, op_name
        for code, response in op["responses"].items():
            if int(code) >= 400 and code != "416":
                assert named(spec, response["content"]["application/json"]["schema"]) == "ErrorResponse"
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"message", "type", "param", "code"}
    content = spec["paths"]["/videos/{video_id}/content"]["get"]["responses"]
    assert set(content["200"]["content"]) == {"video/mp4", "image/png"} and "206" in content and "307" in content
    assert named(spec, spec["paths"]["/videos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]) \
        == "VideoList"


def test_the_bodies_are_derived_from_the_request_contract():
    """Each field is declared once: the documents' bodies carry the request's own ranges and help."""
    fields = set(VideoCreate.model_fields)
    assert set(CreateVideoBody.model_fields) == fields - {"image"} | {"seconds", "size"}
    assert set(RemixVideoBody.model_fields) == set(CreateVideoBody.model_fields)
    assert set(ExtendVideoBody.model_fields) == fields - {"image", "extend"}
    assert set(VideoChange.model_fields) == fields - {"idempotency_key", "callback_url"}
    for model in (CreateVideoBody, VideoChange):
        for name in ("num_frames", "guidance_scale", "width"):
            mine, theirs = model.model_fields[name], VideoCreate.model_fields[name]
            assert mine.metadata == theirs.metadata and mine.description == theirs.description, (model, name)
    assert VideoChange.model_validate({"priority": 5}).priority == 5
    with pytest.raises(ValueError):
        VideoChange.model_validate({"priority": 500})


def test_the_errors_sent_have_the_declared_shapes(tiny_model, tmp_path, documents):
    """What the server answers matches the document: OpenAI's error object under /openai/v1 (from the routes and
    from the middleware alike), t2v's error body elsewhere."""
    settings = Settings(home=tmp_path / "home", default_model=str(tiny_model), max_body_bytes=4096,
                        trusted_hosts="api.example")
    with TestClient(create_app(settings, start_workers=False), base_url="http://api.example") as client:
        bad = client.post("/openai/v1/videos", json={"prompt": "x", "size": "250x250"})
        assert bad.status_code == 400 and ErrorResponse.model_validate(bad.json()).error.param == "size"
        missing = client.get("/openai/v1/videos/01NOSUCHJ0B000000000000000")
        assert missing.status_code == 404 and ErrorResponse.model_validate(missing.json()).error.type == "not_found_error"
        big = client.post("/openai/v1/videos", content=b'{"prompt": "' + b"x" * 5000 + b'"}',
                          headers={"content-type": "application/json"})
        assert big.status_code == 413 and ErrorResponse.model_validate(big.json()).error.code == "too_large"
        newline = client.post("/openai/v1/videos/a%0Ab/remix", json={"prompt": "x"})  # past the mount's pattern
        assert newline.status_code == 404 and ErrorResponse.model_validate(newline.json()).error.message, newline.text
        assert client.get("/v1/nothing-here").json() == {"detail": "Not Found"}  # t2v's own shape elsewhere
        host = client.get("/openai/v1/videos", headers={"Host": "evil.example"})
        assert host.status_code == 400 and ErrorResponse.model_validate(host.json()).error.message
        for answer, path in ((bad, "/videos"), (missing, "/videos/{video_id}"), (big, "/videos")):
            ops = documents["openai"]["paths"][path]
            assert any(str(answer.status_code) in op["responses"] for op in ops.values()), (path, answer.status_code)
        same = client.get("/v1/videos", headers={"Host": "evil.example"})
        assert same.status_code == 400 and ErrorBody.model_validate(same.json()).detail
        served = client.get("/openai/v1/openapi.json").json()
        assert served["components"]["schemas"].keys() == documents["openai"]["components"]["schemas"].keys()
