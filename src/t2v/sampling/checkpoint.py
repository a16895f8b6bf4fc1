"""Latent checkpoints: enough state to resume a denoising loop at step N and get the same frames."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from t2v.sampling.base import CheckpointSpec

logger = logging.getLogger(__name__)

_SIMPLE = (int, float, bool, str, type(None))
_NUMPY = "__numpy__"  # a numpy array, stored as a tensor


def fingerprint(model, request) -> str:
    """Identifies a run exactly (the request's reproducible fields, the weights' hash, device and dtype), so a
    checkpoint is only resumed by the run it came from."""
    data = {**request.reproducible_fields(), "hash": model.content_hash, "device": model.plan.device, "dtype": model.plan.dtype}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _keep(v: Any) -> bool:
    import numpy as np
    import torch

    if isinstance(v, (torch.Tensor, np.ndarray, *_SIMPLE)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_keep(x) for x in v)
    return False


def scheduler_state(scheduler) -> dict[str, Any]:
    """The scheduler's mutable state (step index, multistep history, sigmas...), config excluded."""
    return {k: v for k, v in vars(scheduler).items() if k not in ("config", "_internal_dict") and _keep(v)}


def _plain(v: Any) -> Any:
    """``v`` with numpy arrays turned into tagged tensors: ``torch.load(weights_only=True)`` reads the file."""
    import numpy as np
    import torch

    if isinstance(v, np.ndarray):
        return {_NUMPY: torch.from_numpy(np.ascontiguousarray(v))}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, dict):  # e.g. the state of each of several schedulers
        return {k: _plain(x) for k, x in v.items()}
    return v


def _unplain(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {_NUMPY}:
        return v[_NUMPY].numpy()
    if isinstance(v, (list, tuple)):
        return type(v)(_unplain(x) for x in v)
    if isinstance(v, dict):
        return {k: _unplain(x) for k, x in v.items()}
    return v


def save(path: Path | CheckpointSpec, *, fingerprint: str, step: int, latents, scheduler, generator,
         extra: dict[str, Any] | None = None) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact. Given a
    :class:`CheckpointSpec`, write to its ``path`` and then call its ``on_save`` (a service uploads it there).

    ``extra``: loop state a family keeps outside the scheduler (e.g. CogVideoX DPM's previous prediction),
    tensors or simple values by name.

    Only tensors, numbers, strings and lists/tuples/dicts of them go in the file, so it is read back
    with ``torch.load(weights_only=True)`` (no pickled objects are ever executed).
    """
    spec = path if isinstance(path, CheckpointSpec) else None
    path = spec.path if spec is not None else path
    state = {
        "fingerprint": fingerprint,
        "step": int(step),
        "latents": latents.detach().cpu(),
        "scheduler": {k: _plain(v) for k, v in scheduler_state(scheduler).items()},
        "generator": generator.get_state(),
        "extra": {k: _plain(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in (extra or {}).items()},
    }
    write_state(state, path)
    logger.debug("checkpoint at step %d -> %s", step, path)
    if spec is not None and spec.on_save is not None:
        spec.on_save(path)


def write_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save(state)`` to ``path`` atomically (a temp file beside it, then renamed): a crash mid-write
    leaves the previous file intact."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to this exact request, else None.

    Read with ``weights_only=True``. A file that cannot be read that way (torn, foreign, or holding
    pickled objects) is ignored with a warning: the job starts from step 0 rather than failing.
    """
    import torch

    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        logger.warning("ignoring unreadable checkpoint %s (starting from step 0): %s", path, reason)
        return None
    if not _well_formed(state):
        logger.warning("ignoring checkpoint %s (starting from step 0): not a t2v checkpoint", path)
        return None
    if state["fingerprint"] != fingerprint:
        logger.warning("ignoring checkpoint %s: it belongs to another request", path)
        return None
    return {**state, "scheduler": {k: _unplain(v) for k, v in state["scheduler"].items()},
            "extra": {k: _unplain(v) for k, v in (state.get("extra") or {}).items()}}


def _well_formed(state: Any) -> bool:
    import torch

    return (isinstance(state, dict) and isinstance(state.get("fingerprint"), str) and isinstance(state.get("step"), int)
            and isinstance(state.get("latents"), torch.Tensor) and isinstance(state.get("scheduler"), dict)
            and isinstance(state.get("generator"), torch.Tensor) and state["generator"].dtype == torch.uint8)


def restore_scheduler(scheduler, state: dict[str, Any], device) -> None:
    """Put the saved state back, moving tensors (also inside lists) to ``device``."""
    import torch

    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device)
        if isinstance(v, (list, tuple)):
            return type(v)(move(x) for x in v)
        return v

    for k, v in state.items():
        setattr(scheduler, k, move(v))
