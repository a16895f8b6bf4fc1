"""Earlier versions of a bundled model, kept so that old records replay identically.

A model t2v ships (``t2v-shapes``) can be retrained; its records name the weights they were made with by content
hash (``model_hash``). The previous weights stay in the package under ``ID@VERSION`` (``t2v-shapes@v4``), a
registry entry of their own. :func:`version_for_record` tells which of those made a record, so ``t2v replay``
loads it rather than the current weights.
"""

from __future__ import annotations

from t2v.models.loader import content_hash
from t2v.models.registry import REGISTRY, ModelSpec, canonical_id

SEPARATOR = "@"


def versions_of(model: str) -> list[ModelSpec]:
    """The bundled entries of ``model``'s line: the current one first, then every ``ID@VERSION`` kept."""
    base = canonical_id(model).split(SEPARATOR)[0]
    specs = [s for s in REGISTRY.values() if s.id == base or s.id.startswith(base + SEPARATOR)]
    return [s for s in sorted(specs, key=lambda s: s.id != base) if s.bundled_path is not None]


def version_for_record(record: dict) -> str | None:
    """The id of the bundled version whose weights made ``record`` when that is not the one its ``model`` names
    today (None otherwise, and for models not shipped with t2v or hashes no kept version has)."""
    model, recorded = record.get("model"), str(record.get("model_hash") or "")
    if not model or not recorded:
        return None
    named = canonical_id(str(model))
    weights = recorded.split("+")[0]  # "+lora:...", "+weights:..." name what was applied on top
    for spec in versions_of(named):
        folder = spec.bundled_path
        if folder is not None and folder.is_dir() and content_hash(folder, None) == weights:
            return None if spec.id == named else spec.id
    return None
