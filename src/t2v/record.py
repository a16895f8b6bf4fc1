"""The reproducibility record: what goes in the JSON sidecar and inside every output file."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from t2v.errors import InvalidRequest
from t2v.requests import FLAT_EXTRAS, REQUEST_TYPES, GenerationRequest, SequenceRequest

RECORD_VERSION = 1
# Fields that must match for a replay to promise identical frames.
ENVIRONMENT_FIELDS = ("device", "dtype", "model_hash", "versions")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("t2v", "diffusers", "transformers", "torch", "av"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def build_record(request, *, source, loaded, warnings: list[str], timings: dict[str, float], frames_sha256: str,
                 resumed_from_step: int | None = None) -> dict[str, Any]:
    """Everything needed to reproduce the run, with no outputs yet (those are added after export)."""
    rec: dict[str, Any] = {
        "t2v_record": RECORD_VERSION,
        **request.reproducible_fields(),
        "model": source.id,
        "model_source": source.kind,
        "model_revision": source.revision,
        "model_hash": loaded.content_hash,
        "family": source.family,
        "license": getattr(source, "license", None),
        "weights_variant": loaded.variant,
        "device": loaded.plan.device,
        "dtype": loaded.plan.dtype,
        "dtype_reason": getattr(loaded.plan, "reason", ""),
        "attention": getattr(request, "attention", "auto"),
        "compile": getattr(request, "compile", False),
        "threads": _threads(),
        "formats": list(request.formats),
        "crf": request.crf,
        "versions": versions(),
        "warnings": list(warnings),
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "frames_sha256": frames_sha256,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if getattr(request, "loras", ()):  # each adapter as it ran: its file's content hash, strengths and experts
        rec["adapters"] = [{"path": spec.path, "hash": digest, "scale": spec.scale, "scale_low": spec.scale_low,
                            "experts": spec.experts}
                           for spec, digest in zip(request.loras, loaded.adapter_hashes)]
    if resumed_from_step is not None:
        rec["resumed_from_step"] = resumed_from_step
    return rec


def request_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The GenerationRequest fields stored in a record (for replay)."""
    if not isinstance(record, dict) or "prompt" not in record or "seed" not in record:
        raise InvalidRequest("this is not a t2v record: it has no prompt and seed", field="record")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        raise InvalidRequest(f"record: seed is {record['seed']!r}; a replay needs the whole-number seed the run used",
                             field="record")
    for name, kind in (("postprocess", dict), ("post_history", list), ("frames_sha256", str)):
        if record.get(name) is not None and not isinstance(record[name], kind):
            raise InvalidRequest(f"record: {name} is a {type(record[name]).__name__}, not a "
                                 f"{'JSON object' if kind is dict else 'list' if kind is list else 'string'} as t2v "
                                 "writes it (an edited or damaged record?)", field="record")
    cls = REQUEST_TYPES.get(record.get("mode"), GenerationRequest)
    names = set(cls.model_fields) | (set(FLAT_EXTRAS) if "extras" in cls.model_fields else set())
    names |= {"lora"} if "loras" in cls.model_fields else set()  # a record of before: one adapter
    fields = {k: v for k, v in record.items() if k in names and v is not None}
    if cls is SequenceRequest:
        fields.pop("prompt", None)  # derived from the keyframes
    if isinstance(fields.get("formats"), list):
        fields["formats"] = tuple(fields["formats"])
    return fields


def environment_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable list of environment fields that differ between two records."""
    diffs = []
    for key in ENVIRONMENT_FIELDS:
        a, b = old.get(key), new.get(key)
        if key == "versions" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if k != "t2v" and a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(f"{key}: {a} -> {b}")
    for i, (a, b) in enumerate(zip(old.get("adapters") or [], new.get("adapters") or [])):
        if isinstance(a, dict) and isinstance(b, dict) and a.get("hash") != b.get("hash"):
            diffs.append(f"LoRA {i} ({b.get('path')}): hash {a.get('hash')} -> {b.get('hash')}, the file changed")
    return diffs
