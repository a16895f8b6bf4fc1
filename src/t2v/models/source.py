"""Where a model's files are: a registry id, hub id or local folder turned into a local folder in the
diffusers layout (:class:`ModelSource`), without loading anything.

Hub ids go through ``huggingface_hub.snapshot_download`` into ``$T2V_HOME/models`` (the cache is tried first,
without network), fetching only the files t2v loads; folders are used in place and checked first. Loading the
components from the folder is :mod:`t2v.models.loader`'s part.

Which family a folder is, is the catalogue's data (its card); checking the folder against that family's components
and reading its defaults is the family's own code, so the caller hands the families down (``families``: a family's
name -> the :class:`~t2v.families.Family`, :func:`t2v.families.get_family` above this layer): nothing here looks a
family up.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from t2v.errors import ModelUnavailable
from t2v.models.registry import canonical_id, folder_info, lookup, unknown_model
from t2v.models.catalog import CATALOG, read_index
from t2v.models.compose import compose
from t2v.models.download import snapshot
from t2v.settings import Settings

logger = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

#: The families a caller hands down: a family's name -> its Family (:func:`t2v.families.get_family`).
Families = Callable[[str], Any]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: ``id`` as recorded, ``path`` a local folder in the diffusers layout."""

    id: str
    path: Path
    kind: str  # "hub" or "folder"
    revision: str | None = None  # hub commit hash
    family: str = "unknown"
    defaults: dict[str, Any] = field(default_factory=dict)
    motion_adapter: str | None = None  # AnimateDiff: the MotionAdapter's id as recorded (``path`` is the composed folder)
    license: str | None = None  # as the registry (or the folder's t2v.json) states it
    files: tuple[tuple[str, str], ...] = ()  # (component, file): weights from single files (t2v.models.weightfiles)



def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def as_path(model: str) -> Path:
    """``model`` as a filesystem path, ``~`` expanded (left as is for an unknown ``~user``)."""
    try:
        return Path(model).expanduser()
    except RuntimeError:  # "Could not determine home directory."
        return Path(model)


def model_defaults(model: str, families: Families) -> tuple[str, dict[str, Any]]:
    """Family and defaults of a model without loading or downloading anything."""
    path = as_path(model)
    if os.path.isdir(path):  # False, not OSError, for names no file can have (too long, NUL)
        return folder_info(path, families)
    spec = lookup(model)
    if spec:
        return spec.family, dict(spec.defaults)
    return folder_info(Path("/nonexistent"), families)


def local_folder(model: str) -> Path | None:
    """The folder ``model`` names without downloading: an existing folder or a bundled model (else None)."""
    path = as_path(model)
    if os.path.isdir(path):
        return path
    spec = lookup(model)
    if spec and spec.bundled_path is not None and spec.bundled_path.is_dir():
        return spec.bundled_path
    return None


def check_folder(path: Path, families: Families) -> dict[str, Any]:
    """Check that ``path`` is a complete diffusers folder of a family t2v runs (its card found in the catalogue,
    its components checked by that family of ``families``); return its model_index.json.

    ModelUnavailable names what is wrong: no or bad model_index.json, a pipeline class no family knows, a
    missing component, or a component class the family does not load."""
    index = read_index(path)
    families(CATALOG.card_of_folder(path).name).check_index(path, index)
    return index


def resolve_source(model: str, settings: Settings, *, families: Families, revision: str | None = None,
                   want_fp16: bool = False, motion_adapter: str | None = None) -> ModelSource:
    """Turn a model name into a local folder, downloading from the hub only when allowed; the folder is checked
    by its family of ``families``.

    With ``motion_adapter`` (AnimateDiff) ``model`` is the SD 1.5 model it animates: the source is the two
    composed into one AnimateDiffPipeline folder (:func:`t2v.families.animatediff.compose`)."""
    if motion_adapter is not None:
        base = resolve_source(model, settings, families=families, revision=revision, want_fp16=want_fp16)
        return _with_motion_adapter(base, motion_adapter, settings, families, want_fp16=want_fp16)
    spec = lookup(model)
    if spec is not None and spec.base_model:  # a motion adapter's registry entry: its default base model
        return resolve_source(spec.base_model, settings, families=families, want_fp16=want_fp16,
                              motion_adapter=spec.id)
    source = _resolve_plain(model, settings, families, revision=revision, want_fp16=want_fp16)
    if source.license is None:
        return replace(source, license=spec.license if spec else folder_license(source.path))
    return source


def folder_license(path: Path) -> str | None:
    """The ``license`` a folder's ``t2v.json`` states (None if it states none)."""
    try:
        value = json.loads((path / "t2v.json").read_text()).get("license")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def check_motion_adapter(path: Path) -> Path:
    """``path`` if it is a MotionAdapter folder (config.json naming the class, weights beside it), else
    ModelUnavailable naming what is wrong."""
    try:
        cls = json.loads((path / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        cls = None
    if cls != "MotionAdapter":
        raise ModelUnavailable(f"{path} is not a motion adapter: its config.json does not name MotionAdapter "
                               "(e.g. guoyww/animatediff-motion-adapter-v1-5-3)")
    if not any(path.glob("diffusion_pytorch_model*")):
        raise ModelUnavailable(f"{path} is a motion adapter without weights (diffusion_pytorch_model.safetensors)")
    return path


def _with_motion_adapter(base: ModelSource, adapter: str, settings: Settings, families: Families, *,
                         want_fp16: bool) -> ModelSource:
    if base.family != "sd":
        raise ModelUnavailable(f"--motion-adapter animates Stable Diffusion 1.5 models; {base.id} is a {base.family} model")
    adapter_path = as_path(adapter)
    spec = lookup(adapter)
    if os.path.exists(adapter_path) or looks_like_path(adapter):
        if not adapter_path.is_dir():
            raise ModelUnavailable(f"motion adapter folder {adapter} does not exist")
        adapter_id, folder = str(adapter_path.resolve()), adapter_path.resolve()
    else:
        adapter_id = canonical_id(adapter)
        if not HUB_ID.match(adapter_id):
            raise ModelUnavailable(f"unknown motion adapter {adapter!r}: not a registered one (see `t2v models list`), "
                                   "a folder, or a hub id like org/name")
        folder = snapshot(adapter_id, spec.revision if spec else "main", settings, want_fp16=want_fp16,
                          check=check_motion_adapter)
    check_motion_adapter(folder)
    composed = compose(base.path, folder, Path(settings.cache_dir) / "animatediff")
    family, defaults = folder_info(composed, families)
    if spec is not None:
        defaults = {**defaults, **spec.defaults}
    licenses = [x for x in (base.license, spec.license if spec else folder_license(folder)) if x]
    return ModelSource(id=base.id, path=composed, kind=base.kind, revision=base.revision, family=family,
                       defaults=defaults, motion_adapter=adapter_id, license=" + ".join(dict.fromkeys(licenses)) or None)


def _resolve_plain(model: str, settings: Settings, families: Families, *, revision: str | None,
                   want_fp16: bool) -> ModelSource:
    path = as_path(model)
    if os.path.exists(path) or looks_like_path(model):
        if not os.path.exists(path):
            raise ModelUnavailable(f"model folder {model} does not exist")
        if not path.is_dir():
            raise ModelUnavailable(f"{model} is a file, not a model folder")
        check_folder(path, families)
        family, defaults = folder_info(path, families)
        return ModelSource(id=str(path.resolve()), path=path.resolve(), kind="folder", family=family, defaults=defaults)

    model_id = canonical_id(model)
    spec = lookup(model_id)
    if spec and spec.bundled_path is not None:
        if not spec.bundled_path.is_dir():
            raise ModelUnavailable(f"{model_id} should ship with t2v at {spec.bundled_path}, but that folder is missing; reinstall t2v")
        check_folder(spec.bundled_path, families)
        return ModelSource(id=model_id, path=spec.bundled_path, kind="bundled", family=spec.family, defaults=dict(spec.defaults))
    if not HUB_ID.match(model_id):
        raise unknown_model(model)
    revision = revision or (spec.revision if spec else "main")
    folder = snapshot(model_id, revision, settings, want_fp16=want_fp16)
    check_folder(folder, families)
    family, defaults = folder_info(folder, families)
    if spec:
        family, defaults = spec.family, dict(spec.defaults)
    return ModelSource(id=model_id, path=folder, kind="hub", revision=folder.name, family=family, defaults=defaults)


def pull(model: str, settings: Settings, *, families: Families, revision: str | None = None, fp16: bool = True) -> Path:
    """Download a hub model into the t2v cache (for `t2v models pull`)."""
    model_id = canonical_id(model)
    bundled = lookup(model_id)
    if bundled and bundled.bundled_path is not None:
        return resolve_source(model_id, settings, families=families).path  # ships with t2v: nothing to download
    if not HUB_ID.match(model_id):
        raise ModelUnavailable(f"{model!r} is not a hub id like org/name")
    spec = lookup(model_id)
    online = settings.model_copy(update={"offline": False})
    if spec is not None and spec.base_model:  # a motion adapter: its base model too
        pull(spec.base_model, settings, families=families, fp16=fp16)
    return snapshot(model_id, revision or (spec.revision if spec else "main"), online, want_fp16=fp16,
                    check=check_motion_adapter if spec is not None and spec.base_model else None, refresh=True)
