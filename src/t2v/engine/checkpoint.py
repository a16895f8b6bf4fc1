"""Latent checkpoints: enough state to resume a denoising loop at step N and get the same frames."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_SIMPLE = (int, float, bool, str, type(None))


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


def save(path: Path, *, fingerprint: str, step: int, latents, scheduler, generator) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    import torch

    state = {
        "fingerprint": fingerprint,
        "step": step,
        "latents": latents.detach().cpu(),
        "scheduler": scheduler_state(scheduler),
        "generator": generator.get_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.debug("checkpoint at step %d -> %s", step, path)


def load(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to this exact request, else None."""
    import torch

    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own file under T2V_HOME
    except Exception as e:  # a torn or foreign file: start over rather than fail the job
        logger.warning("ignoring unreadable checkpoint %s: %s", path, e)
        return None
    if state.get("fingerprint") != fingerprint:
        logger.warning("ignoring checkpoint %s: it belongs to another request", path)
        return None
    return state


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
