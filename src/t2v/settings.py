"""Settings: one class, read from ``T2V_*`` environment variables, built by a factory.

Nothing here runs at import time; call :func:`get_settings` (or build ``Settings()``)
where the values are needed, so tests can point ``T2V_HOME`` anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from platformdirs import user_data_dir
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from t2v.requests import check_attention, check_weights
from t2v.errors import InvalidRequest


def _default_home() -> Path:
    return Path(user_data_dir("t2v", appauthor=False))



_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def allow_entry_problem(item: str) -> str | None:
    """What is wrong with one entry of ``T2V_WEBHOOK_ALLOW`` (None: a host name, an IP address or a CIDR network).
    An entry that looks like an address or a network but is not one (``10.0.0.300``, ``10.1.0.0/33``,
    ``127.0.0.1:8080``) is a typo, not a host name to match."""
    import ipaddress

    bare = item.strip("[]")
    if not bare:
        return None
    try:
        ipaddress.ip_network(bare, strict=False)
        return None
    except ValueError:
        pass
    if "/" in bare or ":" in bare or re.fullmatch(r"[0-9.]+", bare):
        return f"{item!r} is not a valid IP address or CIDR network (and not a host name)"
    labels = bare.lower().rstrip(".").split(".")
    if len(bare) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"{item!r} is not a host name (letters, digits and hyphens, dot-separated)"
    return None

class Settings(BaseSettings):
    """Process-wide configuration. Every field can be set as ``T2V_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="T2V_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Data dir: model cache, checkpoints, outputs of services.")
    default_model: str = Field("damo-vilab/text-to-video-ms-1.7b", description="Model used when a request names none.")
    default_image_model: str = Field(
        "stable-diffusion-v1-5/stable-diffusion-v1-5", description="Text-to-image model for t2v image / sequence when none is named."
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    dtype: str = Field("auto", description="auto, fp32, fp16 or bf16.")
    cpu_bf16: bool | None = Field(None, description="Whether --dtype auto computes in bf16 on the CPU (1/0; default: "
                                  "where the CPU has native bf16 arithmetic, AVX-512 BF16 or AMX).")
    attention: str = Field("auto", description="Attention kernel of requests that leave it at auto: sdpa, flash or sage.")
    compile: bool = Field(False, description="torch.compile the denoiser of every video request (servers: warm shapes run faster).")
    weights: str = Field("auto", description="Denoiser weight storage of requests that leave it at auto: fp8 or int8.")
    text_encoder_weights: str = Field("auto", description="Text encoder weight storage of requests that leave it at "
                                      "auto: fp8 or int8.")
    converted_cache: bool = Field(True, description="Keep weights converted to another dtype (fp32 files loaded as bf16) "
                                  "under HOME/cache/converted, so later loads read them as they are (0: convert every time).")
    prompt_cache_mb: int = Field(256, ge=0, description="Prompt embeddings kept under HOME/cache/prompts, by model and "
                                 "prompt: a run whose prompt was encoded before loads no text encoder (0: off).")
    offline: bool = Field(False, description="Never contact the hub (HF_HUB_OFFLINE=1 also turns this on).")
    mmap_threshold_kb: int = Field(0, ge=0, description="Fixed glibc malloc mmap threshold, e.g. 128: freed activations leave the RSS "
                                   "(8% lower peak, 30% slower denoising at full size; 0: glibc's dynamic default).")
    max_frames: int = Field(512, ge=1)
    max_steps: int = Field(500, ge=1)
    max_side: int = Field(2048, ge=8, description="Largest width or height in pixels.")
    max_prompt_chars: int = Field(2000, ge=1)
    upload_decode_s: float = Field(2.0, gt=0, description="CPU seconds an uploaded video's check may spend decoding it "
                                   "(every frame is decoded to count and measure it); a clip that takes longer is refused.")
    checkpoint_every: int = Field(5, ge=0, description="Service jobs save a resumable latent checkpoint every N steps (0: never).")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite at $T2V_HOME/t2v.db. postgresql://... for PostgreSQL.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body (HTTP 413 above).")
    max_upload_bytes: int = Field(21 * 1024 * 1024, ge=1024, description=(
        "Largest body of an image upload (POST /v1/assets, multipart POST /v1/videos, the web page's upload); "
        "HTTP 413 above."))
    poll_s: float = Field(0.5, gt=0, le=60, description="How often an idle worker looks for jobs queued by other "
                          "processes (a submit in its own process wakes it at once).")
    heartbeat_s: float = Field(2.0, gt=0, description="How often a worker marks its running job alive.")
    stale_after_s: float = Field(10.0, gt=0, description="A running job not heard from for this long is requeued.")
    webhook_retries: int = Field(5, ge=0, description="Webhook retries after the first attempt.")
    webhook_backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each time.")
    webhook_secret: str | None = Field(None, description="The server's webhook signing secret, for jobs made without a key "
                                       "and the legacy header (default: generated and kept in $T2V_HOME); each API key "
                                       "signs with its own.")
    webhook_legacy_signature: bool = Field(False, description="Also send the old X-T2V-Signature and X-T2V-Delivery "
                                           "headers (server secret) beside the Standard Webhooks ones, for one release.")
    webhook_allow: str = Field("", description="Comma-separated hosts, IPs or CIDR networks webhooks may reach although they "
                               "are loopback/private/link-local (e.g. 127.0.0.1 for a local receiver). Empty: public addresses only.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook delivery attempt.")
    webhook_workers: int = Field(8, ge=1, le=256, description="Webhook deliveries one server process sends at once "
                                 "(the others wait in the database, due, for a free sender).")
    webhook_per_key: int = Field(2, ge=1, le=256, description="Webhook deliveries of one API key a process sends at "
                                 "once: a key whose receiver hangs holds at most this many senders.")
    record_paths: bool = Field(True, description="Records and progress name a local model folder by its path (0: the "
                               "server's own model folders by their folder name; t2v serve and workers run with 0, so no "
                               "server path reaches a client, in an answer or inside a served file).")
    public_url: str | None = Field(None, description="The server's address as clients reach it (e.g. "
                                   "https://t2v.example.com): the links and Location headers it writes use it instead "
                                   "of the request's Host, and a request for another Host is answered 400.")
    trusted_hosts: str = Field("", description="Comma-separated Host names the server answers besides T2V_PUBLIC_URL's "
                               "(e.g. t2v.internal,*.example.com); when this or T2V_PUBLIC_URL is set, other Hosts get 400 "
                               "(localhost and 127.0.0.1 always pass).")
    cors_origins: str = Field("", description="Comma-separated origins (https://app.example.com) whose pages may call the API "
                              "from a browser; empty (the default): no CORS headers, every cross-origin preflight refused.")
    max_attempts: int = Field(3, ge=1, description="Tries a job gets when its worker dies or loading fails for reasons "
                              "not its own (import error, out of memory, process killed); then it fails saying so.")
    fair_window_s: float = Field(600.0, ge=0, description="Fair queue: among jobs of equal priority, workers take the "
                                 "next one from the API key whose jobs had the least worker time in this many "
                                 "seconds, so one key's long queue does not starve another's (0: oldest first).")
    max_priority: int = Field(10, ge=-100, le=100, description="Highest priority an API key's jobs may have when "
                              "the key sets none of its own (t2v keys create --max-priority); a higher one is refused.")
    priority_across_keys: bool = Field(False, description="Let priority order jobs across API keys too: a key's "
                                       "high-priority jobs then go ahead of every other key's. Off (the default): "
                                       "priority orders a key's own jobs and the fair share decides between keys.")
    retry_pause_s: float = Field(2.0, ge=0, description="How long a worker pauses after a job's failed try before it "
                                 "claims again: this after the first, doubling each time, at most 60 s (0: no pause).")
    ui: bool = Field(True, description="Whether `t2v serve` serves the web page at / (0: the REST API only; Gradio "
                     "is then never imported and the server starts faster).")
    memory_budget_gb: float | None = Field(None, gt=0, description="Memory a job may use (GiB). Requests whose leanest "
                                           "plan is predicted to need more are refused at submit. Default: this "
                                           "machine's free memory, or the GPU's.")
    ram_budget_gb: float | None = Field(None, gt=0, description="CPU memory a GPU job may use (GiB): the weights the "
                                        "low plan keeps in RAM, and what a load passes through. Default: 90% of this "
                                        "machine's available RAM.")
    max_cost: int | None = Field(None, ge=1, description="Largest frames x width x height x steps one request may ask "
                                 "for (None: no limit beyond the memory budget); keys can have a lower one.")
    model_roots: str = Field("", description="Folders (separated by the OS path separator) whose model folders API "
                             "clients may name. Registered and already-cached models are always allowed.")
    allow_downloads: bool = Field(False, description="Let API requests name hub models that are not cached yet (the "
                                  "server downloads them). Otherwise only `t2v models pull` downloads.")
    max_streams_per_key: int = Field(4, ge=1, description="Open /events streams one API key may hold at once (HTTP 429 above).")
    model_cache_gb: float = Field(0.0, ge=0, le=1e6, allow_inf_nan=False,
                                  description="GB of model weights a process keeps loaded between jobs; the most "
                                              "recently used model always stays (0: only that one).")
    lora_idle_s: float = Field(600.0, ge=0, le=1e7, allow_inf_nan=False,
                               description="Seconds a LoRA adapter no job has used stays loaded beside its base model "
                                           "(adapters switch between jobs without reloading the model); then the "
                                           "next job that switches adapters drops it.")
    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads torch computes with (default: torch's "
                                "own, the physical cores; extra hyper-threads only contend).")
    storage_url: str | None = Field(None, description="Where job files go: s3://bucket/prefix (the s3 extra; "
                                    "credentials from the standard AWS variables). Default: the folders under T2V_HOME.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint for T2V_STORAGE_URL (MinIO, Ceph, R2, "
                                        "moto...), addressed path-style. Default: AWS.")
    storage_presign: bool = Field(False, description="Serve files from object storage by redirecting to a presigned "
                                  "URL instead of streaming them through the API.")
    executor: Literal["threads", "ray"] = Field("threads", description="Where a server's jobs run: worker threads in "
                                                "its process, or Ray actors across a cluster (the ray extra).")
    ray_address: str | None = Field(None, description="The Ray cluster of --executor ray (HOST:6379, ray://HOST:10001 "
                                    "or auto). Default: a private local cluster.")
    ray_namespace: str = Field("t2v", min_length=1, description="Ray namespace of the worker actors.")
    ray_gpus_per_worker: float = Field(1.0, gt=0, description="GPUs each Ray worker actor takes (when the cluster has GPUs).")
    ray_device: Literal["auto", "gpu", "cpu"] = Field("auto", description="What Ray worker actors ask for: gpu, cpu, "
                                                      "or auto (gpu when the cluster has one when the actor is made).")
    ray_cpus_per_worker: float = Field(1.0, gt=0, description="CPUs each Ray worker actor takes on a cluster without GPUs.")
    ray_max_workers: int | None = Field(None, ge=1, description="Most Ray worker actors; with it set, queued jobs "
                                        "ask Ray's autoscaler for nodes up to this many workers.")
    records_url: str | None = Field(None, description="mongodb:// or mongodb+srv:// (Atlas) URL: every finished job's record "
                                    "is also written there, through an outbox in the job database (the mongodb extra).")
    records_db: str = Field("t2v", min_length=1, description="MongoDB database of the records.")
    records_collection: str = Field("records", min_length=1, description="MongoDB collection of the records.")
    records_interval_s: float = Field(2.0, gt=0, description="How often pending records are sent to MongoDB (seconds; "
                                      "after a failure, up to 30 s).")

    @field_validator("records_url", mode="after")
    @classmethod
    def _records_url(cls, v: str | None) -> str | None:
        if v is not None and v.strip() and not v.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(f"T2V_RECORDS_URL must start with mongodb:// or mongodb+srv://, e.g. mongodb://127.0.0.1:27017 "
                             f"(got a URL starting {v.split(':', 1)[0]!r})")
        return v.strip() or None if v is not None else None

    @field_validator("attention", "weights", "text_encoder_weights", mode="after")
    @classmethod
    def _speed_option(cls, v: str, info) -> str:
        try:
            return (check_attention if info.field_name == "attention" else check_weights)(v)
        except ValueError as e:
            raise ValueError(f"T2V_{info.field_name.upper()}: {e}") from None

    @field_validator("webhook_allow", mode="after")
    @classmethod
    def _webhook_allow(cls, v: str) -> str:
        for item in (v or "").split(","):
            problem = allow_entry_problem(item.strip())
            if problem:
                raise ValueError(f"{problem}; list host names, IP addresses or CIDR networks "
                                 "separated by commas, e.g. 127.0.0.1,hooks.internal,10.1.0.0/16")
        return v

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if not v or not v.strip():
            return None
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{v!r} is not a server address; give scheme and host, and a path prefix if any, "
                             "e.g. https://t2v.example.com")
        return v.strip().rstrip("/")

    @field_validator("cors_origins", mode="after")
    @classmethod
    def _cors_origins(cls, v: str) -> str:
        for item in filter(None, (o.strip() for o in v.split(","))):
            parts = urlsplit(item)
            if item != "*" and (parts.scheme not in ("http", "https") or not parts.hostname
                                or parts.path or parts.query or parts.fragment):
                raise ValueError(f"{item!r} is not an origin; an origin is scheme and host (and port), with no path, "
                                 "e.g. https://app.example.com")
        return v

    @field_validator("trusted_hosts", mode="after")
    @classmethod
    def _trusted_hosts(cls, v: str) -> str:
        for item in filter(None, (h.strip() for h in v.split(","))):
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+", item):
                raise ValueError(f"{item!r} is not a host name; list names without scheme or port, e.g. "
                                 "t2v.internal,*.example.com")
        return v

    @property
    def allowed_hosts(self) -> list[str] | None:
        """The Host names this server answers (None: any): T2V_PUBLIC_URL's, T2V_TRUSTED_HOSTS and loopback."""
        hosts = [h.strip() for h in self.trusted_hosts.split(",") if h.strip()]
        if self.public_url:
            hosts.append(urlsplit(self.public_url).hostname)
        return [*hosts, "localhost", "127.0.0.1"] if hosts else None

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("home", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        v = v.expanduser()
        if v.exists() and not v.is_dir():
            raise ValueError(f"{v} is a file, not a folder; name a folder (it is made if missing)")
        return v

    @property
    def model_root_paths(self) -> list[Path]:
        """``model_roots`` as resolved folders."""
        import os

        return [Path(p).expanduser().resolve() for p in self.model_roots.split(os.pathsep) if p.strip()]

    @property
    def cache_dir(self) -> Path:
        """Hugging Face hub cache used for model downloads."""
        return self.home / "models"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def videos_dir(self) -> Path:
        return self.home / "videos"


def get_settings(**overrides) -> Settings:
    """Build settings from the environment, with explicit overrides on top. A bad value (``T2V_THREADS=0``) is
    InvalidRequest naming its variable, the problem (with the bound that holds) and the value given."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = str(err["loc"][0]) if err.get("loc") else "?"
            variable = name if name in overrides else f"T2V_{name.upper()}"
            problems.append(f"{variable}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})")
        raise InvalidRequest("; ".join(problems), field=str(e.errors()[0]["loc"][0]) if e.errors() else None) from None
