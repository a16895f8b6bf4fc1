"""Scheduler names users type, mapped to diffusers schedulers built from the model's own config."""

from __future__ import annotations

from typing import Any

from t2v.errors import InvalidRequest


def make_scheduler(name: str, config: dict[str, Any]):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

    own = config.get("_class_name", "DDIMScheduler")
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    builders = {
        "model": lambda: _own_class(own).from_config(config),
        "ddim": lambda: DDIMScheduler.from_config(config),
        "dpm++": lambda: DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2),
        "euler": lambda: EulerDiscreteScheduler.from_config(config),
        "unipc": lambda: UniPCMultistepScheduler.from_config(config),
    }
    if name not in builders:
        raise InvalidRequest(f"unknown scheduler {name!r}; choose one of: {', '.join(builders)}", field="scheduler")
    return builders[name]()


def _own_class(name: str):
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None or not name.endswith("Scheduler"):
        raise InvalidRequest(f"scheduler: the model's own scheduler {name!r} is not in diffusers; pass --scheduler",
                             field="scheduler")
    return cls
