"""A post-processing job (``mode: "post"``): the post stage run on a clip that already exists, a finished job's video
or an uploaded video asset, as ``t2v post`` runs it on a file (:func:`t2v.post.clip.post_file`).

The request names its source by id only (``job`` or ``asset``, exactly one); whoever runs it maps the id to a file
(:func:`t2v.post.job.run_post_request`'s resolvers: on a server, the job's own key's job or asset, read through the
artifact store). It is one of the requests of :data:`t2v.sequence.request.Request`, so it is queued, run, cancelled
and recorded like any other job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from t2v.post.spec import PostSpec

POST_FORMATS = ("mp4", "webm", "gif")


class PostRequest(BaseModel):
    """Post-process an existing clip: ``job`` (a succeeded job's video) or ``asset`` (an uploaded video)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["post"] = "post"
    job: str | None = Field(None, max_length=64, description="A succeeded video or sequence job's id: its video.")
    asset: str | None = Field(None, max_length=64, validate_default=True,
                              description="An uploaded video asset's id (POST /v1/assets).")
    post: PostSpec = Field(..., description="The steps: deflicker, interpolate / target_fps, upscale.")
    formats: tuple[str, ...] = ("mp4",)
    crf: int | None = Field(None, ge=0, le=51, description="Quality for MP4/WebM: lower is better, bigger.")
    prompt: str | None = Field(None, description="The source's prompt (filled in by the service, for listing).")

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> tuple[str, ...]:
        from t2v.request import parse_formats

        out = parse_formats(v or (), POST_FORMATS)
        if not out:
            raise ValueError(f"give at least one format: {', '.join(POST_FORMATS)}")
        return tuple(out)

    @field_validator("asset")
    @classmethod
    def _one_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("job") is None) == (v is None):
            raise ValueError("give exactly one source: job (a finished job's id) or asset (an uploaded video's id)")
        return v

    @model_validator(mode="after")
    def _something_to_do(self) -> PostRequest:
        if not self.post.active:
            raise ValueError("post: nothing to do; give interpolate, target_fps, upscale or deflicker")
        return self

    @property
    def source(self) -> tuple[str, str]:
        """("job" or "asset", its id)."""
        return ("job", self.job) if self.job is not None else ("asset", self.asset or "")

    @classmethod
    def create(cls, **fields: Any) -> PostRequest:
        """Build a request, turning pydantic's errors into one ``InvalidRequest`` naming the field."""
        from t2v.request import validated

        return validated(cls, fields)

    def reproducible_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude={"formats", "crf"})


def source_shape(record: dict[str, Any]) -> dict[str, Any]:
    """What a source clip is, from its record (the last post-processing's output when it had one): num_frames,
    width, height and fps, those it holds."""
    post = record.get("postprocess") or {}
    out = {}
    for name in ("num_frames", "width", "height", "fps"):
        value = post.get(name, record.get(name))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out

