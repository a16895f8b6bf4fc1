"""Request bodies and the JSON shape of a job, shared by the API, webhooks and the CLI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from t2v.requests import PostSpec
from t2v.requests import FORMATS


class _JobFields(BaseModel):
    """What every job body shares: sampling, size, model, outputs, and the queue's own fields."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    negative_prompt: str | None = None
    num_inference_steps: int | None = Field(None, ge=1)
    guidance_scale: float | None = Field(None, ge=0, le=50)
    guidance_scale_2: float | None = Field(None, ge=0, le=50, description="Two-expert models (Wan 2.2 A14B): the low-noise expert's guidance.")
    fps: float | None = Field(None, gt=0, le=120)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    width: int | None = Field(None, ge=16)
    height: int | None = Field(None, ge=16)
    scheduler: str | None = None
    model: str | None = None
    formats: list[str] = Field(default_factory=lambda: ["mp4"], description=f"Any of {', '.join(FORMATS)}.")
    crf: int | None = Field(None, ge=0, le=51)
    idempotency_key: str | None = Field(None, max_length=200)
    priority: int = Field(0, ge=-100, le=100)
    callback_url: str | None = Field(None, pattern=r"^https?://", max_length=2000)

    def generation_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude={"idempotency_key", "priority", "callback_url"}, exclude_none=True)


class VideoCreate(_JobFields):
    """Body of POST /v1/videos: a generation request plus queue options."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"example": {
        "prompt": "a panda surfing on a big ocean wave at sunset", "num_frames": 16, "seed": 42, "formats": ["mp4"]}})

    image: str | None = Field(None, max_length=64, description=(
        "Image-to-video: the first frame, as the id of an image uploaded with POST /v1/assets (or send the file "
        "itself: multipart/form-data with this body as the `request` field and the file as `image`)."))

    video: str | None = Field(None, max_length=64, description=(
        "Video-to-video: the input clip, as the id of a video (mp4, webm or gif) uploaded with POST /v1/assets; its "
        "frames are fitted to width x height and num_frames, encoded, noised to `strength` and denoised."))
    strength: float | None = Field(None, ge=0, le=1, description=(
        "Video-to-video: how much to change the input, 0 (the VAE round trip) to 1 (as from noise); default 0.6."))

    prompt: str = Field(..., min_length=1)
    num_frames: int | None = Field(None, ge=1)
    motion_adapter: str | None = Field(None, max_length=4096, description=(
        "AnimateDiff: a MotionAdapter (registered id, cached hub id or folder under the model roots) that animates "
        "the Stable Diffusion 1.5 `model`."))
    lora: str | None = Field(None, max_length=4096, description="A LoRA adapter folder on the server.")
    lora_scale: float = Field(1.0, ge=-4, le=4)
    decode_timestep: float | None = Field(None, ge=0, le=1, description="LTX-Video 0.9.1+: the timestep the VAE decodes at.")
    decode_noise_scale: float | None = Field(None, ge=0, le=1, description="LTX-Video 0.9.1+: noise mixed in before decoding.")
    cache: str | None = Field(None, max_length=200, description=(
        "Step cache NAME[:KEY=VALUE,...]: deepcache (UNet3D models), fbc, taylorseer, magcache, pab, fastercache "
        "(transformer models); the job's record holds its canonical form. Kernel, compile and weight storage are the "
        "server's (T2V_ATTENTION, T2V_COMPILE, T2V_WEIGHTS)."))
    post: PostSpec | None = Field(None, description=(
        "Post-processing after sampling, in this order: deflicker, frame interpolation (interpolate: 2-8 frames per "
        "frame, or target_fps), upscaling (upscale: 2 or 4 with upscaler lanczos, realesrgan, realesrgan-anime or a "
        "weight file under the server's model roots). Each step is in the job's record (postprocess)."))
    seconds: float | None = Field(None, gt=0, le=600, description=(
        "A longer video: the seconds to make, in segments of num_frames, each continuing the last, the seams "
        "blended; every segment is checkpointed (a killed job resumes after the last one done). With `extend`: "
        "the seconds added."))
    prompt_schedule: list[str] | None = Field(None, max_length=256, description=(
        "A longer video: prompts by frame, e.g. [\"0: a red ball\", \"48: a blue ball\"]."))
    extend: str | None = Field(None, max_length=64, description=(
        "A longer video continuing a clip: the id of a video (mp4, webm or gif) uploaded with POST /v1/assets."))
    overlap: int | None = Field(None, ge=1, le=64, description=(
        "A longer video: frames each continuation shares with the last (default 1 after image-to-video, else "
        "half of num_frames)."))
    continue_strength: float | None = Field(None, gt=0, le=1, description=(
        "A longer video: how much a video-to-video continuation repaints (default 0.7)."))


class SequenceCreate(_JobFields):
    """Body of POST /v1/sequences: a video from keyframe prompts with a text-to-image model (image mode)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"example": {
        "keyframes": ["0: a forest in spring", "24: the same forest in autumn"], "method": "latent-walk", "seed": 1,
        "fps": 12}})

    keyframes: list[str] = Field(..., min_length=1, max_length=256, description="'INDEX: prompt' strings, index 0 first.")
    method: str = Field("latent-walk", description="latent-walk, prompt-interp, img2img, interpolate or independent.")
    strength: float = Field(0.55, gt=0, le=1)
    zoom: float = Field(1.0, ge=0.5, le=2)
    pan_x: float = Field(0.0, ge=-64, le=64)
    pan_y: float = Field(0.0, ge=-64, le=64)
    rotate: float = Field(0.0, ge=-45, le=45)
    contact_sheet: bool = False
    denoise_grid: list[int] = Field(default_factory=list, max_length=32, description="Steps to show in the denoise grid.")
    post: PostSpec | None = Field(None, description="Post-processing of the sequence, as for POST /v1/videos.")

    def generation_fields(self) -> dict[str, Any]:
        return {**super().generation_fields(), "mode": "sequence"}


class PostCreate(BaseModel):
    """Body of POST /v1/post: post-process a finished job's video or an uploaded video (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"example": {
        "job": "01JD3V6S0A8Q5Y9F2W4K7M1N3P", "post": {"interpolate": 2}, "formats": ["mp4"]}})

    job: str | None = Field(None, max_length=64, description="A succeeded video or sequence job of your key: its video.")
    asset: str | None = Field(None, max_length=64, description="A video (mp4, webm or gif) uploaded with POST /v1/assets.")
    post: PostSpec = Field(..., description="The steps, as the `post` block of POST /v1/videos.")
    formats: list[str] = Field(default_factory=lambda: ["mp4"], description="Any of mp4, webm, gif.")
    crf: int | None = Field(None, ge=0, le=51)
    idempotency_key: str | None = Field(None, max_length=200)
    priority: int = Field(0, ge=-100, le=100)
    callback_url: str | None = Field(None, pattern=r"^https?://", max_length=2000)

    def generation_fields(self) -> dict[str, Any]:
        fields = self.model_dump(exclude={"idempotency_key", "priority", "callback_url"}, exclude_none=True)
        return {**fields, "post": self.post.model_dump(exclude_defaults=True), "mode": "post"}


def _iso(dt) -> str | None:
    return dt.isoformat() if dt else None


FIGURES = ("contact_sheet", "denoise_grid")


def _file_url(base_url: str, job_id: str, fmt: str) -> str | None:
    if fmt in FIGURES:
        return f"{base_url}/v1/videos/{job_id}/figures/{fmt}"
    if fmt == "json":
        return f"{base_url}/v1/videos/{job_id}/metadata"
    if fmt == "png":
        return None  # a folder of frames on the server: not served over HTTP
    return f"{base_url}/v1/videos/{job_id}/content?format={fmt}"


def job_to_dict(service, job, *, base_url: str = "") -> dict[str, Any]:
    """The public JSON of a job."""
    position = service.queue_position(job.id) if job.status == "queued" else None
    if job.status == "queued" and position is None:  # claimed meanwhile: show the fresher state
        job = service.find_job(job.id) or job
    fraction = job.step / job.total if job.total else (1.0 if job.status == "succeeded" else 0.0)
    files = [
        {"format": f["format"], "file": f.get("file"), "bytes": f.get("bytes"), "sha256": f.get("sha256"),
         "url": _file_url(base_url, job.id, f["format"])}
        for f in (job.files or [])
    ]
    out = {
        "id": job.id,
        "status": job.status,
        "priority": job.priority,
        "queue_position": position if job.status == "queued" else None,
        "progress": {"stage": job.stage, "step": job.step, "total": job.total, "fraction": round(fraction, 4),
                     "eta_s": job.eta_now()},
        "request": job.request,
        "result": {"files": files, "metadata": job.result} if job.status == "succeeded" else None,
        "error": job.error,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "webhook": {"status": job.webhook_status, "attempts": job.webhook_attempts, "error": job.webhook_error}
        if job.callback_url else None,
        "links": {"self": f"{base_url}/v1/videos/{job.id}", "events": f"{base_url}/v1/videos/{job.id}/events",
                  "content": f"{base_url}/v1/videos/{job.id}/content", "metadata": f"{base_url}/v1/videos/{job.id}/metadata"},
    }
    return out
