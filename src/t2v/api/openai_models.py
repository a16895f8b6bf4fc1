"""The OpenAI-style Videos API's contract as its OpenAPI document declares it: the ``video`` object, its list and
deletion answers, the error object (``{"error": {message, type, param, code}}``) and the request bodies.

The request bodies are derived from t2v's :class:`~t2v.api.schemas.VideoCreate` (its fields, ranges, defaults and
help), with the Videos API's own ``seconds`` and ``size`` beside them and the file parts of the multipart forms;
the routes read them as :mod:`t2v.service.videoapi` does, so these models describe the bodies, they do not parse
them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from t2v.api.schemas import VideoCreate

#: Where the Videos API is mounted on t2v's app.
PREFIX = "/openai/v1"
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         409: "conflict_error", 413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error",
         503: "server_error"}
CODES = {401: "invalid_api_key", 403: "permission_denied", 404: "not_found", 409: "conflict", 413: "too_large",
         415: "unsupported_media_type", 429: "rate_limit_exceeded", 503: "service_unavailable"}
#: What each error status means in this API (each route declares those it can answer).
MEANINGS = {
    400: "A refused field or parameter (`param` names it), a body that cannot be parsed, or a Host this server "
         "does not answer",
    401: "The server has API keys and this request sent none, or an unknown or revoked one",
    403: "A change sent from another site's page to a server without API keys",
    404: "No such video (or file of it) for this API key",
    409: "Not in the video's present state",
    413: "The body is over T2V_MAX_BODY_BYTES (uploads: T2V_MAX_UPLOAD_BYTES)",
    429: "The API key's rate limit or queued-job quota; retry after Retry-After seconds",
    503: "The artifact store cannot be reached now; retry after Retry-After seconds",
}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The Videos API's error answer for ``status``."""
    return {"error": {"message": message, "type": TYPES.get(status, "api_error"), "param": param,
                      "code": code or CODES.get(status, "invalid_request")}}


class Error(BaseModel):
    """What went wrong: the message, its kind, the refused parameter (by the Videos API's name) and a code."""

    message: str
    type: str = Field(..., description="invalid_request_error, authentication_error, not_found_error, ...")
    param: str | None = Field(None, description="The refused parameter (`size`, `seconds`, `input_reference`, ...)")
    code: str | None = Field(None, description="invalid_request, invalid_api_key, video_not_found, ...")


class ErrorResponse(BaseModel):
    """Every error answer of the Videos API."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": {
        "message": "size: 250x250 is not a multiple of 8 on each side; nearest valid: 248x248",
        "type": "invalid_request_error", "param": "size", "code": "invalid_request"}}]})

    error: Error


class VideoError(BaseModel):
    """Why a video failed (or that it was cancelled)."""

    code: str = Field(..., description="generation_failed or cancelled")
    message: str


class Video(BaseModel):
    """A video job as the Videos API shows it."""

    id: str
    object: Literal["video"] = "video"
    model: str | None = Field(None, description="The model, by its public name")
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(..., ge=0, le=100, description="Percent of the denoising steps done")
    created_at: int | None = Field(None, description="Seconds since the epoch")
    completed_at: int | None = None
    expires_at: int | None = None
    seconds: str = Field(..., description="The length in seconds (as asked for until it is made)")
    size: str = Field(..., description="WIDTHxHEIGHT, or empty while not known")
    prompt: str | None = None
    error: VideoError | None = None
    remixed_from_video_id: str | None = None


class VideoList(BaseModel):
    """A page of videos, newest first unless ``order=asc``."""

    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class VideoDeleted(BaseModel):
    """The answer to a deletion."""

    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool


class VideoReference(BaseModel):
    """A video of this server, by id."""

    id: str


SECONDS = (str | float | None, Field(None, description="The length in seconds (\"4\"); it becomes the frame count "
                                                      "nearest it that the model takes, at its fps"))
SIZE = (str | None, Field(None, description="WIDTHxHEIGHT in pixels (\"256x256\"); each side a multiple of what "
                                            "the model needs"))
INPUT_REFERENCE = (bytes | None, Field(None, description="The first frame: PNG, JPEG or WebP"))
FORM_NOTE = (" As multipart/form-data, nested fields are sent as `name[key]` and lists as `name[]`.")


def videos_body(name: str, doc: str, *, drop: tuple[str, ...] = (), **fields: Any) -> type[BaseModel]:
    """A Videos API body: :class:`VideoCreate`'s fields (less ``drop``), then ``fields`` (the Videos API's own)."""
    own = {field: (info.annotation, info) for field, info in VideoCreate.model_fields.items()
           if field not in drop and field not in fields}
    return create_model(name, __doc__=doc, __config__=ConfigDict(extra="forbid"), **own, **fields)


CreateVideoBody = videos_body(
    "CreateVideoBody", "Body of POST /videos (JSON): the prompt, `seconds` and `size`, and t2v's request fields "
    "by t2v's names and checks (`seed`, `num_inference_steps`, ...; `num_frames`, `width` and `height` instead of "
    "`seconds` and `size`).", drop=("image",), seconds=SECONDS, size=SIZE)
CreateVideoForm = videos_body(
    "CreateVideoForm", "Body of POST /videos (multipart/form-data, as the openai SDK sends it): the fields of "
    "CreateVideoBody, and `input_reference`, the first frame." + FORM_NOTE, drop=("image",), seconds=SECONDS,
    size=SIZE, input_reference=INPUT_REFERENCE)
RemixVideoBody = videos_body(
    "RemixVideoBody", "Body of POST /videos/{video_id}/remix: the new prompt, and any field of CreateVideoBody to "
    "change (the rest, seed included, is the source video's).", drop=("image",), seconds=SECONDS, size=SIZE)
EXTEND_DOC = ("Body of POST /videos/extensions: the video to continue and the seconds to add, with the other "
              "fields of CreateVideoBody (a video of this server keeps its model, size, fps, steps and guidance).")
EXTEND_SECONDS = (str | float, Field(..., description="The seconds to add (\"4\")"))
ExtendVideoBody = videos_body(
    "ExtendVideoBody", EXTEND_DOC, drop=("image", "extend", "video"), seconds=EXTEND_SECONDS,
    video=(VideoReference, Field(..., description="The video to continue, by id")))
ExtendVideoForm = videos_body(
    "ExtendVideoForm", EXTEND_DOC + " As a form, `video` is the clip to continue (a file), or the id of a video of "
    "this server as `video[id]`." + FORM_NOTE, drop=("image", "extend", "video"), seconds=EXTEND_SECONDS,
    video=(bytes | VideoReference, Field(..., description="The clip to continue, or a video's id as video[id]")))

#: The request bodies the routes read themselves, as components of the document.
BODIES = (CreateVideoBody, CreateVideoForm, RemixVideoBody, ExtendVideoBody, ExtendVideoForm)
