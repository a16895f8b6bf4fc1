"""History: which past jobs a front end lists, in what order, under which caption."""

from __future__ import annotations

from typing import Any, Iterable

from t2v.frontend.views import FINISHED

CAPTION_CHARS = 60


def short(text: str, chars: int = CAPTION_CHARS) -> str:
    text = " ".join(str(text).split())
    return text[:chars] + "…" if len(text) > chars else text


def caption(status: str, request: dict[str, Any], error: str | None) -> str:
    """A job's line in a history list: its prompt and seed; a failed or cancelled one says so first."""
    prompt = request.get("prompt") or " | ".join(str(k[1]) for k in request.get("keyframes") or () if len(k) > 1)
    text = f"{short(prompt)} · seed {request.get('seed')}"
    if status == "failed":
        return f"⚠ failed: {short(error or 'unknown error')} · {text}"
    if status == "cancelled":
        return f"cancelled · {text}"
    return text


def matches(job, query: str | None) -> bool:
    """True when every word of ``query`` is in the job's prompt, negative prompt or model (any case)."""
    words = (query or "").lower().split()
    if not words:
        return True
    r = job.request or {}
    text = " ".join(str(r.get(k) or "") for k in ("prompt", "negative_prompt", "model")).lower()
    text += " " + " ".join(str(k[1]) for k in r.get("keyframes") or () if len(k) > 1).lower()
    return all(w in text for w in words)


def filter_jobs(jobs: Iterable, query: str | None = None, *, statuses: Iterable[str] = FINISHED,
                limit: int | None = None) -> list:
    """The jobs a history lists: of ``statuses``, matching ``query``, newest first (ids sort by creation
    time), each once, at most ``limit``."""
    wanted = set(statuses)
    seen: dict[str, Any] = {}
    for job in jobs:
        if job.status in wanted and matches(job, query):
            seen.setdefault(job.id, job)
    out = sorted(seen.values(), key=lambda j: j.id, reverse=True)
    return out[:limit] if limit is not None else out
