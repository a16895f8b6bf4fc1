"""Known models and their defaults, gathered from the families' cards (:mod:`t2v.models.hub`); local folders get
theirs from ``t2v.json`` or their family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from t2v.errors import UnknownModel
from t2v.models.catalog import CATALOG
from t2v.models.hub import CARDS
from t2v.models.spec import BUNDLED_DIR, ModelSpec

__all__ = ["BUNDLED_DIR", "REGISTRY", "ModelSpec", "canonical_id", "folder_info", "lookup", "nearest_ids",
           "unknown_model"]

# Every hub model the families declare on their cards, in listing order.
REGISTRY: dict[str, ModelSpec] = {spec.id: spec for card in CARDS for spec in card.models}
_ALIASES = {alias: spec.id for spec in REGISTRY.values() for alias in spec.aliases}


def canonical_id(model: str) -> str:
    """Map an alias (``modelscope``) to its hub id; other names pass through."""
    return _ALIASES.get(model, model)


def lookup(model: str) -> ModelSpec | None:
    return REGISTRY.get(canonical_id(model))


def nearest_ids(name: str, n: int = 3) -> list[str]:
    """The registered ids and aliases nearest to ``name`` (what a typo most likely meant), nearest first."""
    import difflib

    known = {known.lower(): known for known in [*REGISTRY, *_ALIASES]}
    return [known[hit] for hit in difflib.get_close_matches(name.lower(), list(known), n=n, cutoff=0.6)]


def unknown_model(name: str, field: str = "model", what: str = "model") -> UnknownModel:
    """The refusal of a ``what`` name that is nothing t2v can find, naming the nearest registered ids."""
    near = nearest_ids(name)
    hint = f"; did you mean {', '.join(near[:-1])} or {near[-1]}?" if len(near) > 1 else \
        f"; did you mean {near[0]}?" if near else ""
    return UnknownModel(f"{field}: unknown {what} {name!r}: not a registered {what} or alias (see `t2v models list`), "
                        f"an existing folder, or a hub id like org/name{hint}", field=field)


def folder_info(path: Path, families) -> tuple[str, dict[str, Any]]:
    """Family and defaults of a local model folder: its family's defaults (the family's card found from
    ``t2v.json`` or model_index.json's pipeline class, :meth:`t2v.models.catalog.Catalog.card_of_folder`; the
    family itself from ``families``, a name -> Family function the caller hands down), updated by ``t2v.json``.

    A folder without model_index.json gives ("unknown", the default family's defaults: the first card's); loading
    it fails later with the reason. A pipeline class no family knows raises ModelUnavailable naming it."""
    if not (path / "model_index.json").is_file():
        return "unknown", dict(CARDS[0].defaults)
    family = families(CATALOG.card_of_folder(path).name)
    defaults = family.folder_defaults(path)
    meta_file = path / "t2v.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            defaults.update(meta.get("defaults", {}))
        except (ValueError, AttributeError):
            pass
    return family.name, defaults
