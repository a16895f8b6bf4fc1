"""t2v's own model families as cards (:class:`~t2v.models.spec.FamilyCard`): name, pipeline classes, defaults, hub
models, kernels, stock call arguments and tiny builders, read without importing any family's code (the catalogue,
:mod:`t2v.models.catalog`, imports a family's module the first time it runs). One module per family, beside its
code in :mod:`t2v.families`; every card a module of this package declares is found here, so a new family adds its
card module and nothing else in this package."""

from __future__ import annotations

import importlib
import pkgutil

from t2v.models.spec import FamilyCard


def find_cards() -> tuple[FamilyCard, ...]:
    """Every card declared at the top of a module of this package, each once, in listing order (the cards'
    ``order``, then their names)."""
    found: dict[str, FamilyCard] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, FamilyCard):
                found.setdefault(value.name, value)
    return tuple(sorted(found.values(), key=lambda card: (card.order, card.name)))


# The first card is the default family's: a folder that names no family gets its defaults.
CARDS: tuple[FamilyCard, ...] = find_cards()
