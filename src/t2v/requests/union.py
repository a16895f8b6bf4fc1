"""Every request, discriminated by ``mode``: what the service stores, the API takes and the runner dispatches on."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from t2v.errors import InvalidRequest
from t2v.requests.base import invalid_from_validation
from t2v.requests.image import ImageRequest, SequenceRequest
from t2v.requests.post import PostRequest
from t2v.requests.video import GenerationRequest

Request = Annotated[Union[GenerationRequest, SequenceRequest, ImageRequest, PostRequest], Field(discriminator="mode")]
_REQUEST = TypeAdapter(Request)
MODES = ("video", "sequence", "image", "post")
REQUEST_TYPES = {"video": GenerationRequest, "sequence": SequenceRequest, "image": ImageRequest, "post": PostRequest}


def request_from_fields(fields: dict[str, Any]) -> GenerationRequest:
    """The request for stored or submitted fields, of the class its ``mode`` names (default ``video``)."""
    mode = fields.get("mode", "video")
    if mode not in MODES:
        raise InvalidRequest(f"mode: unknown {mode!r}; choose video, sequence, image or post", field="mode")
    try:
        return _REQUEST.validate_python({**fields, "mode": mode})
    except ValidationError as e:
        raise invalid_from_validation(e, tagged=True) from None
