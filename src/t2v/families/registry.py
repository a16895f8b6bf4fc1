"""The family registry: t2v's own family modules and the ``t2v.families`` entry points, found by name, by
pipeline class or by a folder's model_index.json; and the tiny random-weight builders of each family."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families.base import Family, read_index

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "t2v.families"
NOT_FAMILIES = ("base", "registry")  # the package's modules that define no family

_FAMILIES: dict[str, Family] = {}
_LOADED: list[bool] = []


def register_family(family: Family | type[Family]) -> Family:
    """Add a family (a class or an instance); a later one with the same name replaces the earlier."""
    inst = family() if isinstance(family, type) else family
    if not inst.name:
        raise ValueError(f"{type(inst).__name__} has no name")
    _FAMILIES[inst.name] = inst
    return inst


def _load_object(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _builtin() -> list[type[Family]]:
    """The Family subclasses defined in t2v's own family modules (every module of this package but these two):
    adding a family is adding its module."""
    import inspect
    import pkgutil

    import t2v.families as package

    out = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name in NOT_FAMILIES:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        out += [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                if issubclass(obj, Family) and obj.__module__ == module.__name__ and obj.name]
    return out


def all_families() -> dict[str, Family]:
    """Every family: t2v's own, then the ``t2v.families`` entry points (a broken plugin is logged, skipped)."""
    if not _LOADED:
        _LOADED.append(True)
        for cls in _builtin():
            register_family(cls)
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                register_family(ep.load())
            except Exception as e:  # a plugin must not break t2v
                logger.warning("skipping model family plugin %s: %s", ep.name, e)
    return _FAMILIES


def get_family(name: str) -> Family:
    fams = all_families()
    if name not in fams:
        raise ModelUnavailable(f"model family {name!r} is not supported; supported: {', '.join(sorted(fams))}")
    return fams[name]


def family_for_pipeline(class_name: str) -> Family | None:
    return next((f for f in all_families().values() if class_name in f.pipelines), None)


def family_of_folder(path: Path) -> Family:
    """The family of a diffusers folder: ``t2v.json``'s ``family`` if it names a known one, else the family
    that recognises model_index.json's pipeline class. ModelUnavailable names an unknown class."""
    index = read_index(path)
    meta = path / "t2v.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text()).get("family")
        except (OSError, ValueError, AttributeError):
            name = None
        if name in all_families():
            family, cls = all_families()[name], index.get("_class_name", "")
            if cls in family.pipelines:
                return family
            owner = family_for_pipeline(cls)
            raise ModelUnavailable(f"{path}: t2v.json says family {name!r}, but model_index.json's pipeline {cls!r} "
                                   + (f"is the {owner.name} family's; fix t2v.json (or remove its \"family\")" if owner
                                      else f"is not one the {name} family runs ({', '.join(family.pipelines)})"))
    cls = index.get("_class_name", "")
    fam = family_for_pipeline(cls)
    if fam is None:
        known = sorted(p for f in all_families().values() for p in f.pipelines)
        raise ModelUnavailable(f"{path}: no model family knows the pipeline class {cls or '(none)'!r} in its "
                               f"model_index.json; t2v runs: {', '.join(known)}")
    return fam


def tiny_builders() -> dict[str, tuple[Family, str]]:
    """`t2v models make-tiny --family` names -> (family, builder reference)."""
    return {name: (fam, ref) for fam in all_families().values() for name, ref in fam.tiny.items()}


def make_tiny_model(kind: str, out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    builders = tiny_builders()
    if kind not in builders:
        raise InvalidRequest(f"unknown model family {kind!r}; choose one of: {', '.join(sorted(builders))}", field="family")
    return _load_object(builders[kind][1])(Path(out).expanduser(), seed=seed, fp16_variant=fp16_variant)
