"""No server path in an answer: the server's own model folders (``--model`` / ``T2V_DEFAULT_MODEL``, the image
default) go out under a public name, the folder's name, and come back in under it.

A client never learns where the server keeps its model: job JSON, records, ``/v1/models``, ``/readyz`` and the
web page's configuration say ``tiny-model`` where the server has ``/srv/models/tiny-model``, and a request (or
the page's model menu) naming ``tiny-model`` runs the server's folder, unless a registered model has that id.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from t2v.models.registry import lookup
from t2v.models.source import as_path


@functools.lru_cache(maxsize=32)
def _folders(models: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    out: dict[str, str] = {}
    back: dict[str, str] = {}
    for model in models:
        if not model or lookup(model) is not None:
            continue
        try:
            real = os.path.realpath(as_path(model))
        except (OSError, ValueError):
            continue
        if not os.path.isdir(real):
            continue
        name = os.path.basename(real) or "model"
        for spelling in (model, real, str(as_path(model))):
            out[spelling] = name
        back.setdefault(name, model)
    return out, back


def server_folders(settings) -> dict[str, str]:
    """Each spelling of the server's own model folders -> its public name."""
    return _folders((settings.default_model, settings.default_image_model))[0]


def public_model(settings, model: str | None) -> str | None:
    """``model`` as a client may see it."""
    return server_folders(settings).get(model, model) if isinstance(model, str) else model


def accept_public_model(settings, model: str | None) -> str | None:
    """A model a client named: the public name of one of the server's folders is that folder (a registered id
    stays the registered model)."""
    if not isinstance(model, str) or lookup(model) is not None:
        return model
    return _folders((settings.default_model, settings.default_image_model))[1].get(model, model)


def hide_server_paths(settings, value: Any) -> Any:
    """``value`` (JSON-like) with every string that names one of the server's model folders replaced by its
    public name."""
    names = server_folders(settings)
    if not names:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return names.get(v, v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(value)
