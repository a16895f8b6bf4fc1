"""The names a request may use, and their checks: schedulers, formats, devices, dtypes, memory plans, and the
limits of sizes and counts. Everything here is plain data and string checks: nothing loads."""

from __future__ import annotations

from typing import Any

from t2v.errors import InvalidRequest

DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, distorted, artifacts, flicker, jitter"
# "model": the model's own scheduler (its scheduler_config.json), as the stock diffusers pipeline runs it.
SCHEDULERS = ("model", "ddim", "dpm++", "euler", "unipc")
FORMATS = ("mp4", "webm", "gif", "png")
POST_FORMATS = ("mp4", "webm", "gif")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "fp32", "fp16", "bf16")
PLANS = ("auto", "speed", "balanced", "low")  # memory plans (t2v.planner.memory)
MAX_FRAMES = 512
MAX_STEPS = 500
MIN_SIDE, MAX_SIDE = 16, 2048
MAX_SEED = 2**63 - 1
DEFAULT_STRENGTH = 0.6  # video-to-video: the request's strength when it gives a video and no strength
MAX_SECONDS = 600  # longer videos: the most seconds one request makes


def check_device_name(device: str) -> str:
    """Validate the spelling of a device request (``cuda:N`` allowed) without touching torch."""
    base, _, index = device.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise InvalidRequest(f"unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps", field="device")
    return device


def check_dtype_name(dtype: str) -> str:
    aliases = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}
    dtype = aliases.get(dtype, dtype)
    if dtype not in DTYPES:
        raise InvalidRequest(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}", field="dtype")
    return dtype


def check_plan_name(plan: str) -> str:
    if plan not in PLANS:
        raise ValueError(f"unknown memory plan {plan!r}; choose one of: {', '.join(PLANS)}")
    return plan


def check_scheduler_name(name: str | None) -> str | None:
    if name is not None:
        name = name.lower()
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    return name


def parse_formats(v: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``"mp4"`` or ``["MP4", ".gif", "mp4"]`` -> ``("mp4", "gif")``: lower case, no dot, no repeats; ValueError
    naming an unknown one and the choices."""
    if isinstance(v, str):
        v = [v]
    out: list[str] = []
    for f in v:
        f = str(f).lower().lstrip(".")
        if f not in allowed:
            raise ValueError(f"unknown format {f!r}; choose from: {', '.join(allowed)}")
        if f not in out:
            out.append(f)
    return tuple(out)
