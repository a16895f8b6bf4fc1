"""MagCache's calibrated magnitude ratios, kept per model weights and step count under ``$T2V_HOME/cache/magcache``
(made by ``t2v cache calibrate``: :func:`t2v.sampling.stepcache.calibrate`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from t2v.errors import InvalidRequest
from t2v.models.diskcache import cache_path


def ratios_file(content_hash: str, steps: int) -> Path | None:
    """Where the MagCache ratios of the weights ``content_hash`` at ``steps`` steps are kept."""
    root = cache_path("magcache")
    return None if root is None else root / f"{re.sub(r'[^A-Za-z0-9]+', '_', content_hash)}-{int(steps)}.json"


def magcache_ratios(model, request) -> dict[str, list[float]]:
    """The calibrated ratios ({transformer name: ratios}) for this model at the request's step count;
    InvalidRequest naming the calibration command when there are none."""
    path = ratios_file(model.content_hash, request.num_inference_steps)
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        data = None
    ratios = data.get("ratios") if isinstance(data, dict) else None
    if not (isinstance(ratios, dict) and ratios and all(isinstance(v, list) and len(v) > 1 for v in ratios.values())):
        raise InvalidRequest(f"cache: magcache needs this model's magnitude ratios at {request.num_inference_steps} "
                             f"steps; make them once with `t2v cache calibrate --model {request.model} --steps "
                             f"{request.num_inference_steps}`", field="cache")
    return ratios
