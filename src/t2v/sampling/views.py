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
# What a group-offload group holds that a view copies: its modules, tensors and tables (the rest it shares).
_STRUCTURE = _IMMUTABLE + (list, dict, set, OrderedDict)


def private_view(module):
    """A copy of ``module``'s structure (new module objects, with their own hooks, processors and attributes)
    that shares its parameter and buffer tensors (and any other tensor it holds): costs no weight memory, and
    hooks set on it leave ``module`` (and every other run using it) untouched.

    Built module by module rather than by ``copy.deepcopy``: empty hook tables and plain values are made or
    shared directly, and only what is left (processors, hook registries, configs) goes through deepcopy, with
    the modules already viewed in its memo. A 500-module video VAE takes a few milliseconds instead of tens."""
    import torch

    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers(), _offload_shared(module))}
    return _view(module, memo, torch.Tensor)


def _offload_shared(module):
    """What a view shares with ``module``'s group-offload hooks (t2v.sampling.offload) beyond the weights: each
    group's pinned CPU copies, and the objects it holds that are not structure: its side stream and the handle on
    the accelerator's torch module (a Python module cannot be copied). The view's hooks and groups are its own (they name the view's
    modules as their leaders); a copied pinned copy would double the weights in CPU memory for each run."""
    import torch

    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        for hook in (registry.hooks.values() if registry is not None else ()):
            group = getattr(hook, "group", None)
            if group is None:
                continue
            yield from (getattr(group, "cpu_param_dict", None) or {}).values()
            # the stream and the accelerator's torch module (or what wraps it): objects, not structure
            yield from (v for v in vars(group).values()
                        if v is not None and not isinstance(v, _STRUCTURE + (torch.nn.Module,)))


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
