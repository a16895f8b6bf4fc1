"""The process's runtime: what a server imports before it starts the threads that load models and run jobs."""

from __future__ import annotations

import importlib

from t2v.families import all_families
from t2v.models.loader import load_model
from t2v.runner.plan import plan_model
from t2v.runtime import Runtime
from t2v.settings import Settings

def load_pipeline(model: str, *, device: str, dtype: str, settings: Settings, runtime: Runtime | None = None):
    """Load (and keep in the process's model cache) ``model``'s components for ``device``/``dtype``: what a later
    run of the same model and precision reuses."""
    plan, source, family = plan_model(model, settings, device=device, dtype=dtype)
    loaded = load_model(source, plan, family=family, runtime=runtime)
    loaded.components.load_all()  # warm: the text encoders too, for the first prompt not in the prompt cache
    return loaded


_RUNTIME_MODULES = ("t2v.runner.modes", "t2v.sampling.vae", "t2v.sampling.schedulers", "t2v.sampling.checkpoint",
                    "t2v.planner.memory", "t2v.models.lora", "t2v.record", "t2v.export", "t2v.runner.image", "av", "PIL.Image")


def import_runtime() -> None:
    """Import everything running a request needs (torch, the diffusers/transformers classes t2v loads, t2v's
    engine and writers) in the calling thread.

    diffusers and transformers resolve their classes lazily, on first use, and not thread-safely: two threads
    doing it at once can fail with ``ImportError: cannot import name 'AutoencoderKL'``. So a server calls this
    before it starts threads that load models or run jobs (:meth:`t2v.service.JobService.start`).
    """
    import diffusers
    import torch  # noqa: F401
    import transformers
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding  # noqa: F401
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel  # noqa: F401

    # every family module (and plugin) once, here, and every class a family may load
    names = {cls for fam in all_families().values() for c in fam.components for cls in c.classes}
    for name in sorted(names | {"AutoencoderKL", "CLIPTextConfig", "AutoTokenizer"}):
        for library in (diffusers, transformers):
            try:
                getattr(library, name)
                break
            except (AttributeError, ImportError):
                continue

    for name in _RUNTIME_MODULES:
        importlib.import_module(name)
