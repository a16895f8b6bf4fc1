"""A run's model as the request's speed options shape it, without touching the cached, shared one.

The loaded-model cache is shared by every run in the process (and by a server's worker threads), so what one
request asks for (an attention kernel, a step cache, compiled blocks) must not leak into another's. Each
option gives the run a private view of the denoiser (:func:`private_view`: new module
objects sharing the same weight tensors) or a cached variant, and the run's :class:`LoadedModel` copy points
at it; the views go when the run ends.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from t2v.models.precision import check_weights
from t2v.sampling import accel, stepcache
from t2v.sampling.views import private_view, with_components


@contextmanager
def prepared(family, model, request, ctx) -> Iterator:
    """``model`` for this run of ``request``: its own view of the autoencoder (some keep per-call state on their
    modules: Wan's and CogVideoX's causal feature caches, which two runs decoding at once would mix), attention
    kernel and compiled blocks (:mod:`t2v.sampling.accel`), then the step cache (:mod:`t2v.sampling.stepcache`)."""
    vae = model.components.get("vae")
    if vae is not None and hasattr(vae, "parameters"):
        model = with_components(model, vae=private_view(vae))
    model = accel.apply(family, model, request, ctx)
    with stepcache.applied(family, model, request, ctx) as run_model:
        yield run_model


def check(family, request, *, model: str = "this model") -> None:
    """Refuse, before loading, speed options this family (or this machine) cannot honour (InvalidRequest
    naming the field and what would work)."""
    stepcache.check(family, request, model=model)
    accel.check(family, request, model=model)
    weights = getattr(request, "weights", "auto")
    if weights != "auto":  # the device matters only to a format asked for (finding it imports torch, which the
        # default run leaves to its imports stage)
        check_weights(weights, accel.target_device(request), getattr(request, "dtype", "auto"),
                      lora=bool(getattr(request, "loras", ())))
