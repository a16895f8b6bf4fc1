"""The REST request bodies, derived from the request contract (t2v.requests); the JSON of a job is the service's
(:func:`t2v.service.views.job_to_dict`)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Union, get_args, get_origin

import copy
from types import UnionType

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic.fields import FieldInfo

from t2v.requests import (GenerationRequest, JobOptions, PostRequest, SequenceRequest, applies, move_asset_ids,
                          move_flat_extras, move_single_lora, on_surface)


def body_type(annotation: Any) -> Any:
    """A request field's type as JSON carries it: lists for tuples (a schedule's entries as "INDEX: prompt")."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType):
        kinds = [body_type(a) for a in args if a is not type(None)]
        return Optional[kinds[0]] if len(kinds) == 1 and type(None) in args else annotation
    if get_origin(annotation) is tuple:
        inner = args[0]
        return list[str] if get_origin(inner) is tuple else list[inner]
    return annotation


def body_field(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """(the JSON type, the field's own declaration with a list default where the request's is a tuple)."""
    if isinstance(info.default, tuple):
        info = copy.copy(info)
        info.default = list(info.default)
    return body_type(info.annotation), info


def derived_body(name: str, request: type[BaseModel], mode: str, *, doc: str, example: dict[str, Any],
                 flat_extras: bool = False) -> type[BaseModel]:
    """A REST body derived from ``request``: its fields on the API surface (same ranges, defaults and help;
    the mode is the route's), then the queue's :class:`~t2v.requests.JobOptions`. ``flat_extras``: a body of
    before family extras (decode_timestep ... at the top level) is still taken."""
    fields = {field: body_field(info) for field, info in request.model_fields.items()
              if field != "mode" and on_surface(request, field, "api") and applies(request, field, mode)}
    base = FlatExtrasBody if flat_extras else JobBody
    config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"example": example})
    model = create_model(name, __base__=base, __doc__=doc, **fields)
    model.model_config = {**model.model_config, **config}
    model.mode = mode
    model.model_rebuild(force=True)
    return model


class JobBody(JobOptions):
    """A job body: what to make (the request's fields) and how to queue it (:class:`~t2v.requests.JobOptions`)."""

    mode: ClassVar[str] = "video"

    def generation_fields(self) -> dict[str, Any]:
        fields = self.model_dump(exclude=JobOptions.names(), exclude_none=True)
        return {**fields, "mode": self.mode}


class FlatExtrasBody(JobBody):
    @model_validator(mode="before")
    @classmethod
    def _flat_extras(cls, data: Any) -> Any:
        return move_single_lora(move_flat_extras(move_asset_ids(data)))


VideoCreate = derived_body(
    "VideoCreate", GenerationRequest, "video", flat_extras=True,
    doc="Body of POST /v1/videos: a video request (its fields as GenerationRequest declares them) plus queue options. "
        "image, last_image, video, extend, control_video, mask_video, face_video, background_video and reference_images "
        "name assets uploaded with POST /v1/assets (image_id and last_image_id are taken as other names of image and "
        "last_image).",
    example={"prompt": "a panda surfing on a big ocean wave at sunset", "num_frames": 16, "seed": 42, "formats": ["mp4"]})


SequenceCreate = derived_body(
    "SequenceCreate", SequenceRequest, "sequence",
    doc="Body of POST /v1/sequences: a video from keyframe prompts with a text-to-image model (image mode).",
    example={"keyframes": ["0: a forest in spring", "24: the same forest in autumn"], "method": "latent-walk", "seed": 1,
             "fps": 12})


PostCreate = derived_body(
    "PostCreate", PostRequest, "post",
    doc="Body of POST /v1/post: post-process a finished job's video or an uploaded video (exactly one of the two).",
    example={"job": "01JD3V6S0A8Q5Y9F2W4K7M1N3P", "post": {"interpolate": 2}, "formats": ["mp4"]})


def optional(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """A field as a change names it: its own declaration, not required and without a default."""
    changed = copy.copy(info)
    changed.default, changed.default_factory = None, None
    return Optional[info.annotation], changed


VideoChange = create_model(
    "VideoChange", __config__=ConfigDict(extra="forbid"),
    __doc__="Body of PATCH /v1/videos/{id}: what changes in a queued job, its priority and any field of VideoCreate "
            "(each checked as at submit), e.g. {\"priority\": 10}.",
    **{field: optional(info) for field, info in VideoCreate.model_fields.items()
       if field not in ("idempotency_key", "callback_url")})


class VideoCreateForm(BaseModel):
    """Body of POST /v1/videos as multipart/form-data: the JSON body as the ``request`` field, the first frame as
    the ``image`` file (stored as an asset of the caller's key, which the job names)."""

    request: str = Field(..., description="The JSON body (VideoCreate) as text, without `image`")
    image: Optional[bytes] = Field(None, description="The first frame: PNG, JPEG or WebP")


class BatchCreate(BaseModel):
    """Body of POST /v1/batches (JSON): the jobs' bodies, as POST /v1/videos takes them, and the batch's queue
    options (the same as a job's)."""

    requests: list[VideoCreate] = Field(..., description="The jobs' bodies, as POST /v1/videos takes them (without "
                                                         "priority, idempotency_key or callback_url)")
    priority: int = JobOptions.model_fields["priority"]
    idempotency_key: Optional[str] = JobOptions.model_fields["idempotency_key"]
    partial: bool = Field(False, description="Queue the valid lines and list the others, instead of queueing "
                                             "nothing when any is invalid")
