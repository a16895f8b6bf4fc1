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


@contextmanager
def prepared(family, model, request, ctx) -> Iterator:
    """``model`` for this run of ``request``: attention kernel and compiled blocks (:mod:`t2v.sampling.accel`),
    then the step cache (:mod:`t2v.sampling.stepcache`)."""
    from t2v.sampling import accel, stepcache

    model = accel.apply(family, model, request, ctx)
    with stepcache.applied(family, model, request, ctx) as run_model:
        yield run_model


def check(family, request, *, model: str = "this model") -> None:
    """Refuse, before loading, speed options this family (or this machine) cannot honour (InvalidRequest
    naming the field and what would work)."""
    from t2v.sampling import accel, stepcache
    from t2v.models.precision import check_weights

    stepcache.check(family, request, model=model)
    accel.check(family, request, model=model)
    check_weights(getattr(request, "weights", "auto"), accel.target_device(request), getattr(request, "dtype", "auto"),
                  lora=getattr(request, "lora", None))


def private_view(module):
    """A copy of ``module``'s structure (new module objects, with their own hooks, processors and attributes)
    that shares its parameter and buffer tensors: costs no weight memory, and hooks set on it leave ``module``
    (and every other run using it) untouched."""
    import copy
    import itertools

    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, memo)


def with_components(model, **components):
    """A copy of the run's :class:`t2v.models.loader.LoadedModel` with some components replaced."""
    return model.copy(components={**model.components, **components})
