"""The family registry, as the runner and the front ends use it: families found by name, by pipeline class or by a
folder, every family for listings, and the tiny random-weight builders. It reads the process's catalogue
(:data:`t2v.models.catalog.CATALOG`): the families' cards are known without importing any family module, and a
family's module is imported the first time that family is used."""

from __future__ import annotations

from pathlib import Path

from t2v.errors import ModelUnavailable
from t2v.families.base import Family
from t2v.models.catalog import CATALOG, ENTRY_POINT_GROUP, load_ref

__all__ = ["ENTRY_POINT_GROUP", "all_families", "family_for_pipeline", "family_of_folder", "get_family",
           "make_tiny_model", "register_family", "tiny_builders"]


def register_family(family: Family | type[Family]) -> Family:
    """Add a family (a class or an instance); a later one with the same name replaces the earlier."""
    return CATALOG.register(family() if isinstance(family, type) else family)


def all_families() -> dict[str, Family]:
    """Every family, t2v's own then the ``t2v.families`` entry points' (each module imported): for listings,
    error messages naming the families that can do something, and a server importing everything before its
    threads start."""
    return {name: get_family(name) for name in CATALOG.all_cards()}


def get_family(name: str) -> Family:
    """The family ``name`` (its module imported now if it was not); ModelUnavailable for an unknown one."""
    made = CATALOG.families
    if name not in made:
        card = CATALOG.card(name)
        if card is None:
            raise ModelUnavailable(f"model family {name!r} is not supported; supported: "
                                   f"{', '.join(sorted(CATALOG.all_cards()))}")
        made[name] = load_ref(card.ref)()
    return made[name]


def family_for_pipeline(class_name: str) -> Family | None:
    card = CATALOG.card_for_pipeline(class_name)
    return None if card is None else get_family(card.name)


def family_of_folder(path: str | Path) -> Family:
    """The family of a diffusers folder (:meth:`t2v.models.catalog.Catalog.card_of_folder`)."""
    return get_family(CATALOG.card_of_folder(Path(path)).name)


def tiny_builders() -> dict[str, tuple[Family, str]]:
    """`t2v models make-tiny --family` names -> (the family, builder reference); every family is imported."""
    return {name: (get_family(card.name), ref) for name, (card, ref) in CATALOG.tiny_builders().items()}


def make_tiny_model(kind: str, out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    return CATALOG.make_tiny_model(kind, out, seed=seed, fp16_variant=fp16_variant)
