"""Private views of a run's model: new module objects sharing the cached weights, so that what one run sets on
them (hooks, processors, compiled blocks) leaves the shared model and every other run untouched."""

from __future__ import annotations

import copy
import itertools


def private_view(module):
    """A copy of ``module``'s structure (new module objects, with their own hooks, processors and attributes)
    that shares its parameter and buffer tensors: costs no weight memory, and hooks set on it leave ``module``
    (and every other run using it) untouched."""
    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, memo)


def with_components(model, **components):
    """A copy of the run's :class:`t2v.models.loader.LoadedModel` with some components replaced."""
    return model.copy(components={**model.components, **components})
