"""What ``GET /v1/models`` answers, and what the in-process front ends read the same way: the models the
server can run, each with its defaults and rules, the server's default model first, and the server's limits."""

from __future__ import annotations

import logging
import os
from typing import Any

from t2v.errors import T2VError
from t2v.families import get_family
from t2v.models.registry import REGISTRY, lookup
from t2v.models.allowlist import is_present
from t2v.models.spec import TASK_INPUTS
from t2v.models.source import as_path, local_folder, model_defaults
from t2v.models.publicnames import public_model

logger = logging.getLogger(__name__)

TASKS = {"video": "t2v", "i2v": "i2v", "image": "image"}


def rules_of(family_name: str, path, tasks=()) -> dict[str, Any] | None:
    """The family's request rules for the folder ``path`` (None: not on disk, the family's generic rules, with the
    input fields of the registry's ``tasks``)."""
    try:
        family = get_family(family_name)
        r = family.rules(path)
        if path is not None:
            inputs = [*(("image",) if "i2v" in r.modes else ()),
                      *(("last_image",) if family.takes_last_image(path) else ()),
                      *family.control_fields(path)]
        else:
            inputs = list(dict.fromkeys(f for t in tasks for f in TASK_INPUTS.get(t, ())))
        own_clip = family.clip_is_control(path) if path is not None else "control_video" in inputs
        if "video" in r.modes and not own_clip:  # a clip to start from (VACE takes its own)
            inputs += [*(("video",) if family.encodes_video else ()),
                       *(("extend",) if family.encodes_video or "i2v" in r.modes else ())]
    except (T2VError, KeyError, OSError, ValueError) as e:
        logger.debug("no rules for %s (%s): %s", family_name, path, e)
        return None
    return {"size_multiple": r.size_multiple, "frame_step": r.frame_step, "max_frames": r.max_frames,
            "schedulers": list(r.schedulers) if r.schedulers else None, "modes": list(r.modes), "inputs": inputs}


def model_list(settings) -> dict[str, Any]:
    """The body of ``GET /v1/models`` (see :class:`t2v.contract.ModelList`)."""
    items = []
    default = settings.default_model
    if lookup(default) is None and os.path.isdir(as_path(default)):  # a folder the server was started with
        try:
            family, defaults = model_defaults(default, get_family)
            rules = rules_of(family, as_path(default))
            items.append({"id": public_model(settings, default), "family": family, "present": True,
                          "description": "This server's model (a local folder)",
                          "defaults": defaults, "rules": rules,
                          "tasks": [TASKS[m] for m in (rules or {}).get("modes", ["video"])]})
        except T2VError as e:
            logger.warning("the default model %s cannot be described: %s", default, e)
    for spec in REGISTRY.values():
        item = spec.to_dict()
        item["rules"] = rules_of(spec.family, local_folder(spec.id), spec.tasks)
        item["present"] = is_present(spec.id, settings, get_family)
        items.append(item)
    default = public_model(settings, default)  # a folder's public name: no server path in the answer
    items.sort(key=lambda m: m["id"] != default and default not in m.get("aliases", []))  # the default first
    return {"default": default, "items": items, "downloads": bool(settings.allow_downloads),
            "limits": {"max_frames": settings.max_frames, "max_steps": settings.max_steps, "max_side": settings.max_side}}
