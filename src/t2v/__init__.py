"""t2v: text-to-video with diffusion models.

>>> from t2v import GenerationRequest, generate
>>> result = generate(GenerationRequest(prompt="a panda surfing", model="path/to/model"))  # doctest: +SKIP
"""

from t2v.errors import Cancelled, ExportError, InvalidRequest, ModelUnavailable, T2VError
from t2v.requests import GenerationRequest, GenerationResult, ProgressEvent

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "ExportError",
    "GenerationRequest",
    "GenerationResult",
    "InvalidRequest",
    "ModelUnavailable",
    "ProgressEvent",
    "T2VError",
    "__version__",
    "generate",
    "load_pipeline",
]


def generate(request, **kwargs):
    """See :func:`t2v.generation.generate` (imported lazily so ``import t2v`` stays light)."""
    from t2v.generation import generate as _generate

    return _generate(request, **kwargs)


def load_pipeline(model: str, *, device: str = "auto", dtype: str = "auto", settings=None):
    """Load (and cache) a model's components for ``device``/``dtype``; later ``generate`` calls reuse them."""
    from t2v.models.device import fit_to_model, plan_device
    from t2v.models.loader import load_model
    from t2v.models.source import resolve_source
    from t2v.settings import get_settings

    settings = settings or get_settings()
    plan = plan_device(device, dtype, cpu_bf16=settings.cpu_bf16)
    source = resolve_source(model, settings, want_fp16=plan.is_accelerator and plan.dtype != "fp32")
    return load_model(source, fit_to_model(plan, source.path, asked=dtype, cpu_bf16=settings.cpu_bf16))
