"""Private views of a run's model: new module objects sharing the cached weights, so that what one run sets on
them (hooks, processors, compiled blocks) leaves the shared model and every other run untouched."""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict

# Module attributes that are shared, not copied: the weight tables are rebuilt as new dicts holding the same
# tensors, the child table as new dicts of views.
_TABLES = ("_parameters", "_buffers")
_IMMUTABLE = (int, float, bool, str, bytes, type(None), frozenset, tuple)


def private_view(module):
    """A copy of ``module``'s structure (new module objects, with their own hooks, processors and attributes)
    that shares its parameter and buffer tensors (and any other tensor it holds): costs no weight memory, and
    hooks set on it leave ``module`` (and every other run using it) untouched.

    Built module by module rather than by ``copy.deepcopy``: empty hook tables and plain values are made or
    shared directly, and only what is left (processors, hook registries, configs) goes through deepcopy, with
    the modules already viewed in its memo. A 500-module video VAE takes a few milliseconds instead of tens."""
    import torch

    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return _view(module, memo, torch.Tensor)


def _view(module, memo: dict, tensor: type):
    done = memo.get(id(module))
    if done is not None:
        return done
    new = module.__class__.__new__(module.__class__)
    memo[id(module)] = new  # the originals stay alive through ``module``, the root, while the view is built
    state = {}
    for key, value in module.__dict__.items():
        if key == "_modules":
            state[key] = {name: None if child is None else _view(child, memo, tensor) for name, child in value.items()}
        elif key in _TABLES:
            state[key] = dict(value)
        elif isinstance(value, _IMMUTABLE) or isinstance(value, tensor):
            state[key] = value
        elif type(value) in (dict, OrderedDict, set, list) and not value:
            state[key] = type(value)()
        else:
            state[key] = copy.deepcopy(value, memo)
    new.__dict__.update(state)
    return new


def with_components(model, **components):
    """A copy of the run's :class:`t2v.models.loader.LoadedModel` with some components replaced."""
    return model.copy(components={**model.components, **components})
