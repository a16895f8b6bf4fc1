"""Which models an API or web-UI caller may name (the command line trusts its user and takes any folder).

Registered models, the server's own defaults, models already in its cache and folders under
``T2V_MODEL_ROOTS`` pass; everything else gets :data:`NOT_ALLOWED`, word for word the same whatever is (or
is not) at that path. A hub model not in the cache passes only with ``allow_downloads`` (and not offline).
A model folder is checked by its family, from the ``families`` the caller hands down (:mod:`t2v.models.source`).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from t2v.errors import ModelUnavailable
from t2v.models.download import cached_snapshot, is_offline
from t2v.models.source import (HUB_ID, Families, as_path, check_folder, check_motion_adapter, looks_like_path,
                               resolve_source)
from t2v.models.registry import canonical_id, lookup, nearest_ids
from t2v.settings import Settings

__all__ = ["NOT_ALLOWED", "allowed_folder", "check_allowed", "check_available", "is_cached"]

# The one answer to an API request naming a model it may not use: the same whatever is (or is not) at that path.
NOT_ALLOWED = ("this model is not available on this server; name a registered model (GET /v1/models), a model in "
               "the server's cache, or a model folder under its model roots (T2V_MODEL_ROOTS)")


def allowed_folder(name: str, settings: Settings, *, cache: bool = True) -> Path | None:
    """``name`` as a folder under ``settings.model_roots`` (or, with ``cache``, the model cache), with symlinks
    and ``..`` resolved before the check; None when it lies anywhere else or is not a folder."""
    try:
        path = Path(os.path.realpath(as_path(name)))
        roots = [*settings.model_root_paths, *([Path(os.path.realpath(settings.cache_dir))] if cache else [])]
        inside = any(path == root or root in path.parents for root in roots)
        return path if inside and path.is_dir() else None
    except (OSError, ValueError, RuntimeError):  # a name no file can have (too long, NUL)
        return None


def is_cached(model_id: str, revision: str, settings: Settings, check) -> bool:
    """Whether the hub model is complete in the t2v cache (no network); ``check`` tells a complete folder (a
    pipeline folder: :func:`t2v.models.source.check_folder` with the families)."""
    folder = cached_snapshot(model_id, revision, settings.cache_dir)  # an interrupted download is not cached
    if folder is None:
        return False
    try:
        check(folder)
    except ModelUnavailable:  # not a model t2v runs
        return False
    return True


def is_present(model: str, settings: Settings, families: Families) -> bool:
    """Whether ``model`` runs here without a download: a folder, a bundled model, or a complete cached hub model."""
    if os.path.isdir(as_path(model)):
        return True
    spec = lookup(canonical_id(model))
    if spec is not None and spec.bundled_path is not None:
        return spec.bundled_path.is_dir()
    return is_cached(canonical_id(model), spec.revision if spec else "main", settings,
                     partial(check_folder, families=families))


def check_allowed(model: str, settings: Settings, families: Families, check=None) -> None:
    """The allow-list for untrusted callers (see :func:`t2v.models.source.check_available`); ``check`` tells a
    usable folder (None: a pipeline folder, checked by its family of ``families``;
    :func:`t2v.models.source.check_motion_adapter` for motion adapters)."""
    if check is None and model in (settings.default_model, settings.default_image_model):
        return  # the server's own defaults, configured by its admin
    model_id = canonical_id(model)
    spec = lookup(model_id)
    if spec is not None and spec.base_model and check is None:  # a motion adapter entry: it and its base
        check_allowed(spec.base_model, settings, families)
        check = check_motion_adapter
    if check is None:
        check = partial(check_folder, families=families)
    downloads = settings.allow_downloads and not is_offline(settings)
    if looks_like_path(model) or os.path.exists(as_path(model)):  # what resolve_source takes as a folder
        folder = allowed_folder(model, settings)
        try:
            if folder is not None and check(folder):
                return
        except ModelUnavailable:
            pass
    elif spec is not None:
        if spec.bundled_path is not None or downloads or is_cached(model_id, spec.revision, settings, check):
            return
        raise ModelUnavailable(f"model {model_id} is not downloaded on this server; its admin can fetch it with "
                               f"`t2v models pull {model_id}` (or let requests download with T2V_ALLOW_DOWNLOADS=1)")
    elif HUB_ID.match(model_id) and (downloads or is_cached(model_id, "main", settings, check)):
        return
    near = [] if looks_like_path(model) else nearest_ids(model)  # registered ids only: GET /v1/models lists them
    raise ModelUnavailable(NOT_ALLOWED + (f"; did you mean {' or '.join(near)}?" if near else ""))


def check_available(model: str, settings: Settings, *, families: Families, restricted: bool = False,
                    motion_adapter: str | None = None) -> None:
    """Raise ModelUnavailable now if ``model`` (with ``motion_adapter``) could not be loaded later (a folder, or
    a hub id when offline).

    ``restricted`` (requests from the API and the web UI): only the server's default models, registered
    models, models in the cache and folders under ``settings.model_roots`` pass; any other name gets
    :data:`t2v.models.allowlist.NOT_ALLOWED`, the same text whatever is or is not at that path. A hub model not in the cache passes
    only with ``settings.allow_downloads`` (and not offline): the server never downloads one otherwise.
    The same goes for a motion adapter.
    """
    if restricted:
        check_allowed(model, settings, families)
        if motion_adapter is not None:
            check_allowed(motion_adapter, settings, families, check=check_motion_adapter)
    names = [model] + ([motion_adapter] if motion_adapter is not None else [])
    local = [os.path.exists(as_path(n)) or looks_like_path(n) or not HUB_ID.match(canonical_id(n)) for n in names]
    if all(local) or is_offline(settings):
        resolve_source(model, settings, families=families, motion_adapter=motion_adapter)
    elif local[0]:  # a folder with a hub adapter: the folder now, the adapter when its job runs
        resolve_source(model, settings, families=families)
    elif motion_adapter is not None and local[1]:
        check_motion_adapter(as_path(motion_adapter))
