"""What the routes answer, as the OpenAPI document declares it: the one error body (:class:`ErrorBody`), the
answers that have no model in :mod:`t2v.contract` (health, readiness, the run record), and the media types of
files, event streams and metrics.

Every error answer of the API is an :class:`ErrorBody` (``{"detail": ...}``), whoever writes it: a route, the
exception handlers of :mod:`t2v.api.app`, FastAPI's request validation, or the middleware that refuses a body
that is too large or a request from another site or to another host. The clients read ``detail`` (a sentence,
or a list of ``{loc, msg, type}`` whose ``loc`` ends with the field's name).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from t2v.api.openai_models import PREFIX, error_body
from t2v.contract import Job, Result

ERROR_SCHEMA_REF = "#/components/schemas/ErrorBody"


class ErrorItem(BaseModel):
    """One problem with a request: where (``loc``), what (``msg``) and its kind (``type``)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(..., description="Where: body, query, path or header, then the field's path "
                                                  "(`[\"body\", \"post\", \"upscaler\"]`)")
    msg: str = Field(..., description="What is wrong, naming the nearest valid value where there is one")
    type: str = Field(..., description="The kind of problem (`value_error`, `missing`, `json_invalid`, ...)")


class ErrorBody(BaseModel):
    """Every error answer: ``detail`` is one sentence, or (a refused field) a list of problems naming the field."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"detail": "no job with id 01JD3V6S0A8Q5Y9F2W4K7M1N3P"},
        {"detail": [{"loc": ["body", "num_frames"], "msg": "num_frames: 1000 is more than 240, this server's "
                                                            "limit (T2V_MAX_FRAMES)", "type": "value_error"}]},
    ]})

    detail: str | list[ErrorItem]


#: What each error status means in this API (each route declares those it can answer).
ERRORS: dict[int, str] = {
    400: "Bad Request: a Host this server does not answer (T2V_PUBLIC_URL, T2V_TRUSTED_HOSTS, or a keyless "
         "server's loopback-only rule), or a form body that cannot be parsed",
    401: "Unauthorized: the server has API keys and this request sent none, or an unknown or revoked one",
    403: "Forbidden: a change sent from another site's page to a server without API keys",
    404: "Not Found: no such job, asset or file for this API key (another key's reads as missing)",
    409: "Conflict: not in the job's present state (its files and record exist once it has succeeded)",
    413: "Content Too Large: the body is over T2V_MAX_BODY_BYTES (uploads: T2V_MAX_UPLOAD_BYTES)",
    415: "Unsupported Media Type: send JSON, or multipart/form-data with the JSON as the `request` field",
    422: "Unprocessable: a field is missing, of the wrong type, out of range or refused; `detail` lists each "
         "problem and `loc` names its field",
    429: "Too Many Requests: the API key's rate limit, queued-job quota or open-stream cap; retry after "
         "Retry-After seconds",
    503: "Service Unavailable: the artifact store or the record store cannot be reached now; retry after "
         "Retry-After seconds",
}

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}


def errors(*codes: int, json_route: bool = True) -> dict[int, dict[str, Any]]:
    """``responses=`` entries declaring ``codes`` as :class:`ErrorBody` answers. ``json_route=False`` for a
    route whose own media type is not JSON (an event stream): FastAPI would declare a ``model`` under it."""
    out: dict[int, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"description": ERRORS[code]}
        if json_route:
            entry["model"] = ErrorBody
        else:
            entry["content"] = {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}
        if code in _HEADERS:
            entry["headers"] = _HEADERS[code]
        out[code] = entry
    return out


#: The errors any route behind an API key can answer: a refused Host, a missing key, a malformed parameter.
KEYED = (400, 401, 422)
#: ... and those of a route that changes something: another site's page, a body too large.
CHANGING = (*KEYED, 403, 413)

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_CONTENT_RANGE = {"Content-Range": {"description": "`bytes START-END/SIZE` (206), `bytes */SIZE` (416)",
                                    "schema": {"type": "string"}}}


RANGE_DOC = "One byte range, `bytes=START-END`, `bytes=START-` or `bytes=-LAST_N` (206 Partial Content)"


def file_responses(*media_types: str, what: str, redirect: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that sends a stored file: 200 with the whole file, 206 with the byte range a
    ``Range: bytes=START-END`` header asks for (one range; several, or a malformed one, get the whole file),
    416 for a range past the end and, with ``redirect``, 307 to a presigned object-storage URL."""
    content = {media: _BINARY for media in media_types}
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": what, "content": content,
              "headers": {"Accept-Ranges": {"description": "`bytes`", "schema": {"type": "string"}}}},
        206: {"description": f"Partial Content: the byte range of the {what.lower()} that `Range` asked for",
              "content": content, "headers": _CONTENT_RANGE},
        416: {"description": "Range Not Satisfiable: the range starts past the end (no body)",
              "headers": _CONTENT_RANGE},
    }
    if redirect:
        out[307] = {"description": "With T2V_STORAGE_PRESIGN=1: a redirect to a presigned object-storage URL "
                                   "(which takes `Range` too)",
                    "headers": {"Location": {"description": "The presigned URL", "schema": {"type": "string"}}}}
    return out


def body_doc(json_body: type[BaseModel], form: type[BaseModel] | None = None,
             **more: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` naming the body a route reads itself (JSON, and multipart/form-data as ``form``; ``more``
    adds other media types by name) as components that :func:`with_components` declares."""
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{json_body.__name__}"}}}
    if form is not None:
        content["multipart/form-data"] = {"schema": {"$ref": f"#/components/schemas/{form.__name__}"}}
    return {"requestBody": {"required": True, "content": {**content, **more}}}


LOCATION = {"Location": {"description": "The job's (or asset's) URL", "schema": {"type": "string"}}}
#: The answers of a route that queues a job (beside its errors).
QUEUED: dict[int, dict[str, Any]] = {
    202: {"description": "The job, queued", "headers": LOCATION},
    200: {"model": Job, "description": "The job an earlier request with this idempotency_key queued", "headers": LOCATION},
}


class Health(BaseModel):
    """``GET /healthz``: the process is up."""

    status: str = Field("ok", examples=["ok"])


class Readiness(Result):
    """``GET /readyz``: whether the workers can take jobs (200) or not (503). Counts for everyone; with a valid
    key (or on a server without keys) also the loaded models, the warm-up state and running job ids."""

    ready: bool
    workers: int = Field(..., description="Worker slots of this process")
    workers_alive: int
    busy_workers: int
    warm: dict[str, Any] = Field(..., description="The warm-up: `done`, and with details the `model` and `error`")
    checked_at: float = Field(..., description="When, in seconds since the epoch")
    executor: str | None = Field(None, description="threads, ray or none (details only)")
    models_loaded: list[dict[str, Any]] | None = Field(None, description="Models in memory (details only)")
    busy: list[str] | None = Field(None, description="Running job ids (details only; a key sees its own)")
    where: list[dict[str, Any]] | None = Field(None, description="Where each worker runs (details, without keys)")


class RunRecord(Result):
    """``GET /v1/videos/{id}/metadata``: the reproducibility record of a finished job, as the JSON sidecar and the
    video files hold it (``t2v replay`` makes the same frames from it). Fields of newer servers are kept."""

    t2v_record: int | None = Field(None, description="The record format's version")
    mode: str | None = Field(None, description="video, sequence, image or post")
    prompt: str | None = None
    seed: int | None = None
    model: str | None = Field(None, description="The model as the job named it (no server paths)")
    family: str | None = None
    device: str | None = None
    dtype: str | None = None
    formats: list[str] | None = None
    versions: dict[str, Any] | None = Field(None, description="python, t2v, diffusers, transformers, torch, av")
    timings: dict[str, Any] | None = Field(None, description="Seconds per stage")
    warnings: list[Any] | None = None
    frames_sha256: str | None = Field(None, description="sha256 over the frames' shape and bytes")
    created_at: str | None = None


#: The events of ``GET /v1/videos/{id}/events``.
EVENT_NAMES = ("progress", "succeeded", "failed", "cancelled", "error")
EVENT_STREAM_DOC: dict[str, Any] = {
    "description": "Server-Sent Events: `progress` while the job waits or runs, then one of `succeeded`, `failed` "
                   "or `cancelled` (the final state), each with the job as JSON `data` and an `id` naming the "
                   "state it reports; `error` (data: `{\"detail\": ...}`) when the job was deleted, the key "
                   "revoked or the stream's slot lost. Comments (`: ping`) keep an idle stream open.",
    "content": {"text/event-stream": {"itemSchema": {"properties": {
        "event": {"type": "string", "enum": list(EVENT_NAMES)},
        "id": {"type": "string", "description": "STATUS.STAGE.STEP.QUEUE_POSITION; send it back as "
                                                 "Last-Event-ID to resume after it"},
    }}}},
}

#: ``GET /metrics``: the Prometheus text format, or OpenMetrics when the scraper asks for it.
METRICS_DOC: dict[str, Any] = {
    "description": "Prometheus metrics: t2v_jobs{status} and t2v_queue_depth (from the database, every server "
                   "process's jobs), t2v_step_seconds and t2v_generation_seconds (this process's, or every "
                   "process's with PROMETHEUS_MULTIPROC_DIR)",
    "content": {"text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}}},
}


def edge_error(path: str, status: int, message: str) -> dict[str, Any]:
    """The error body a middleware answers for ``path``: the Videos API's error object under its mount
    (:mod:`t2v.api.openai_models`), :class:`ErrorBody` elsewhere."""
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return error_body(status, message)
    return {"detail": message}


def with_components(app, models: tuple[type[BaseModel], ...], *, drop: tuple[str, ...] = (),
                    names: dict[str, str] | None = None) -> None:
    """Make ``app.openapi()`` declare ``models`` as named components (the bodies routes read themselves and name by
    ``$ref`` in ``openapi_extra``), leave out the schemas named in ``drop`` with the responses that use them
    (FastAPI's 422 ``HTTPValidationError`` on an app whose validation errors are another status), and rename the
    components FastAPI named after a route (``names``: ``{"Body_create_asset_v1_assets_post": "AssetUpload"}``)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = plain()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
        for name, schema in defs.get("$defs", {}).items():  # a model FastAPI declared too keeps FastAPI's schema
            if set(schemas.setdefault(name, schema).get("properties", {})) != set(schema.get("properties", {})):
                raise ValueError(f"two schemas named {name} in the OpenAPI document")
        refs = {f"#/components/schemas/{name}" for name in drop}
        for ops in spec["paths"].values():
            for op in ops.values():
                for code, response in list(op.get("responses", {}).items()):
                    if {c.get("schema", {}).get("$ref") for c in response.get("content", {}).values()} & refs:
                        del op["responses"][code]
        for name in drop:
            schemas.pop(name, None)
        for old, new in (names or {}).items():
            schemas[new] = {**schemas.pop(old), "title": new}
        if names:
            text = json.dumps(spec)
            for old, new in names.items():
                text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
            spec = json.loads(text)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi
