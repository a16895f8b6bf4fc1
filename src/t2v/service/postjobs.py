"""Post-processing jobs' sources, a part of :class:`~t2v.service.JobService` (its ``postjobs``; ``POST /v1/post``,
``mode: "post"``): the source, a succeeded job's video or an uploaded video asset, must be the submitting key's
own; the worker reads it through the artifact store (so a worker on another machine, with object storage, reads the
same bytes).

Another key's job or asset reads exactly as a missing one (404). A job that has not succeeded, or has no video,
is refused (422 naming ``job``). The clip the steps would make is checked against the server's limits
(``T2V_MAX_FRAMES``, ``T2V_MAX_SIDE``), the memory budget (the frames held at once) and the cost limits at submit:
an asset's size read from its container, a job's from its record (else they are checked when the job runs).
"""

from __future__ import annotations

from pathlib import Path

from t2v.errors import InvalidRequest
from t2v.post.stage import check_post
from t2v.requests import source_shape
from t2v.service.access import visible_job
from t2v.service.assets import AssetService
from t2v.service.files import JobFiles
from t2v.service.limits import check_post_cost
from t2v.service.ports import JobTable
from t2v.settings import Settings

#: A job's files that can be post-processed, the first one present is read.
SOURCE_FORMATS = ("mp4", "webm", "gif")


class PostService:
    """Checks a post job's source at submit (a job of the store's ``jobs`` as the key may see it, an asset through
    ``assets``) and finds its video for the worker (in ``files``, the service's artifact store)."""

    def __init__(self, settings: Settings, jobs: JobTable, files: JobFiles, assets: AssetService) -> None:
        self.settings, self.jobs, self.files, self.assets = settings, jobs, files, assets

    def check_post_source(self, request, api_key=None):
        """At submit: ``request`` (a :class:`~t2v.requests.PostRequest`) with its source checked, and the
        source's prompt noted (for listing and search). :class:`JobNotFound` (404) for another key's job or asset."""
        kind, ref = request.source
        if kind == "asset":
            self.assets.video_asset(ref, api_key, field="asset")
            frames, width, height, fps = self.assets.video_shape(ref, api_key, field="asset")  # nothing decoded
            shape, prompt = {"num_frames": frames, "width": width, "height": height, "fps": fps or 8.0}, None
        else:
            job = visible_job(self.jobs, ref, api_key)
            if job.status != "succeeded":
                raise InvalidRequest(f"job: job {ref} is {job.status}; post-process it once it has succeeded",
                                     field="job")
            if self.job_video_key(job) is None:
                have = ", ".join(f.get("format", "?") for f in job.files or []) or "none, purged"
                raise InvalidRequest(f"job: job {ref} has no video file to post-process ({', '.join(SOURCE_FORMATS)}; "
                                     f"it has: {have})", field="job")
            shape, prompt = source_shape(job.result or {}), (job.request or {}).get("prompt")
        limits = {"max_frames": self.settings.max_frames, "max_side": self.settings.max_side,
                  "max_bytes": self.assets.decode_budget()}
        if {"num_frames", "fps", "width", "height"} <= shape.keys():
            size = {"num_frames": int(shape["num_frames"]), "width": int(shape["width"]), "height": int(shape["height"])}
            check_post(request.post, float(shape["fps"]), **size, **limits)
            check_post_cost(request.post, float(shape["fps"]), **size, settings=self.settings, api_key=api_key)
        return request.model_copy(update={"prompt": prompt}) if isinstance(prompt, str) else request

    def job_video_key(self, job) -> str | None:
        """The artifact key of the video file a post job reads from ``job`` (mp4, else webm, else gif), or None."""
        return next((key for fmt in SOURCE_FORMATS if (key := self.files.job_file_key(job, fmt))), None)

    def job_video_resolver(self, api_key_id: str | None):
        """For the worker: ``request.job`` (a job of the same key as the post job) -> its video file on this
        machine (the stored file, or with object storage a cached copy). A job deleted or purged since the submit
        is the request's problem (InvalidRequest naming ``job``); a store that fails raises OSError, so the job is
        tried again later."""
        def resolve(ref: str) -> Path:
            job = self.jobs.get_job(ref) if "\x00" not in ref else None
            if job is None or job.api_key_id != api_key_id:
                raise InvalidRequest(f"job: the job {ref} was deleted before this job ran", field="job")
            key = self.job_video_key(job)
            try:
                path = self.files.local_file(key) if key else None
            except Exception as e:  # object storage unreachable: not the request's fault
                raise OSError(f"job: could not read the video of job {ref}: {e}") from e
            if path is None:
                raise InvalidRequest(f"job: the files of job {ref} were removed before this job ran", field="job")
            return path
        return resolve
