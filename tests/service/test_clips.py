"""At submit, every clip a request names is measured before it is queued: the checks follow the request's declared
video fields (``knob(file="video")``), so a new clip field is checked without naming it in the service."""

from __future__ import annotations

from types import SimpleNamespace

from t2v.requests import GenerationRequest, file_fields
from t2v.service.limits import file_refs
from t2v.service.service import SIZED_CLIPS, WHOLE_CLIPS, JobService

ASSET = "asset_{}"


class Recorder:
    """The asset checks a submit makes, noted instead of reading containers."""

    def __init__(self) -> None:
        self.decoded: dict[str, int | None] = {}
        self.sized: list[str] = []

    def check_decode(self, ref, api_key=None, *, field, frames=None):
        assert ref == ASSET.format(field)
        self.decoded[field] = frames

    def check_clip_fits(self, ref, api_key=None, *, field, width, height, frames):
        assert (width, height, frames) == (48, 32, 9)
        self.sized.append(field)


def every_file(fit: bool) -> GenerationRequest:
    """A request naming a file in every file field (built without validation: no model takes them all at once)."""
    fields = {name: (ASSET.format(name),) if name == "reference_images" else ASSET.format(name)
              for name in file_fields(GenerationRequest)}
    base = GenerationRequest.create(prompt="x", num_frames=9, width=48, height=32)
    return GenerationRequest.model_construct(**{**base.model_dump(), **fields, "fit": fit})


def test_every_declared_video_field_is_measured():
    videos = [name for name, kind in file_fields(GenerationRequest).items() if kind == "video"]
    assert WHOLE_CLIPS <= set(videos) and SIZED_CLIPS <= set(videos)
    checks = Recorder()
    JobService.check_clips(SimpleNamespace(assets=checks), every_file(fit=False))
    assert sorted(checks.decoded) == sorted(videos)
    assert all(frames == (None if name in WHOLE_CLIPS else 9) for name, frames in checks.decoded.items())
    assert sorted(checks.sized) == sorted(SIZED_CLIPS)
    fitted = Recorder()
    JobService.check_clips(SimpleNamespace(assets=fitted), every_file(fit=True))
    assert fitted.decoded == checks.decoded and fitted.sized == []


def test_file_refs_follow_the_declaration():
    request = every_file(fit=False)
    refs = list(file_refs(request))
    assert [name for name, _, _ in refs] == list(file_fields(GenerationRequest))
    assert {kind for _, kind, _ in file_refs(request, "image")} == {"image"}
    assert ("reference_images", "image", "asset_reference_images") in refs
