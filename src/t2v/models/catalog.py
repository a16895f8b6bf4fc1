"""The model families t2v knows, read from their cards without importing any family's code.

A card (:class:`~t2v.models.spec.FamilyCard`) says a family's name, the pipeline classes it runs, its defaults,
hub models and tiny builders, and where its code is (``module:Class``). The family itself is made the first time
the runner asks for it (:func:`t2v.families.get_family`, which keeps it in :attr:`Catalog.families`), so running
one model imports one family module; nothing here makes or calls a family. t2v's own cards are
:data:`t2v.models.hub.CARDS`; a third-party family is a plugin, an entry point in the ``t2v.families`` group
naming its Family class (read when a name or pipeline class is not among the cards, or when every family is
listed).
"""

from __future__ import annotations

import importlib
import json
import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.models.hub import CARDS
from t2v.models.spec import FamilyCard

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "t2v.families"


def load_ref(ref: str) -> Any:
    """The object ``module:attribute`` names (a family class, a tiny builder), imported now."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def read_index(path: Path) -> dict[str, Any]:
    """A diffusers folder's model_index.json (ModelUnavailable naming what is wrong with it)."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelUnavailable(f"{path} is not a diffusers model folder: it has no model_index.json")
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"{index_file} is not valid JSON: {e}") from None
    if not isinstance(index, dict):
        raise ModelUnavailable(f"{index_file} is not a JSON object")
    return index


def config(path: Path, name: str, file: str = "config.json") -> dict[str, Any]:
    """A component's config (``{}`` when the folder has none)."""
    f = Path(path) / name / file
    try:
        return json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}


def card_of(family: Any) -> FamilyCard:
    """The card of a Family class or instance (a plugin's, read from its attributes)."""
    cls = family if isinstance(family, type) else type(family)
    card = getattr(family, "card", None)
    if isinstance(card, FamilyCard):
        return card
    return FamilyCard(name=family.name, ref=f"{cls.__module__}:{cls.__qualname__}", description=family.description,
                      pipelines=tuple(family.pipelines), defaults=dict(family.defaults), tiny=dict(family.tiny),
                      models=tuple(getattr(family, "models", ())), extras=getattr(family, "extras", None),
                      modes=tuple(getattr(family, "modes", ("video",))),
                      encodes_video=bool(getattr(family, "encodes_video", False)))


class Catalog:
    """The families by name: their cards at once; ``families`` holds those made so far (by
    :mod:`t2v.families.registry`, or registered)."""

    def __init__(self, cards: tuple[FamilyCard, ...] = CARDS) -> None:
        self.cards: dict[str, FamilyCard] = {card.name: card for card in cards}
        self.families: dict[str, Any] = {}
        self.plugins_read = False

    def register(self, family: Any) -> Any:
        """Add a family's card (from a class or an instance; an instance, made by the caller, is also kept as the
        family of that name); a later one with the same name replaces the earlier."""
        if not family.name:
            raise ValueError(f"{getattr(family, '__name__', type(family).__name__)} has no name")
        self.cards[family.name] = card_of(family)
        self.families.pop(family.name, None)
        if not isinstance(family, type):
            self.families[family.name] = family
        return family

    def read_plugins(self) -> None:
        """Register the ``t2v.families`` entry points once (a broken plugin is logged and skipped)."""
        if self.plugins_read:
            return
        self.plugins_read = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                self.register(ep.load())
            except Exception as e:  # noqa: BLE001  a plugin must not break t2v
                logger.warning("skipping model family plugin %s: %s", ep.name, e)

    def card(self, name: str) -> FamilyCard | None:
        if name not in self.cards:
            self.read_plugins()
        return self.cards.get(name)

    def all_cards(self) -> dict[str, FamilyCard]:
        self.read_plugins()
        return dict(self.cards)

    def card_for_pipeline(self, class_name: str) -> FamilyCard | None:
        found = next((c for c in self.cards.values() if class_name in c.pipelines), None)
        if found is None and not self.plugins_read:
            self.read_plugins()
            found = next((c for c in self.cards.values() if class_name in c.pipelines), None)
        return found

    def card_of_folder(self, path: Path) -> FamilyCard:
        """The family of a diffusers folder: ``t2v.json``'s ``family`` if it names a known one, else the family
        that runs model_index.json's pipeline class. ModelUnavailable names an unknown class or a ``t2v.json``
        family that contradicts the pipeline class."""
        index = read_index(path)
        cls = index.get("_class_name", "")
        meta = path / "t2v.json"
        name = None
        if meta.is_file():
            try:
                name = json.loads(meta.read_text()).get("family")
            except (OSError, ValueError, AttributeError):
                name = None
        card = self.card(name) if isinstance(name, str) else None
        if card is not None:
            if cls in card.pipelines:
                return card
            owner = self.card_for_pipeline(cls)
            raise ModelUnavailable(f"{path}: t2v.json says family {name!r}, but model_index.json's pipeline {cls!r} "
                                   + (f"is the {owner.name} family's; fix t2v.json (or remove its \"family\")" if owner
                                      else f"is not one the {name} family runs ({', '.join(card.pipelines)})"))
        found = self.card_for_pipeline(cls)
        if found is None:
            known = sorted(p for c in self.all_cards().values() for p in c.pipelines)
            raise ModelUnavailable(f"{path}: no model family knows the pipeline class {cls or '(none)'!r} in its "
                                   f"model_index.json; t2v runs: {', '.join(known)}")
        return found

    def tiny_builders(self) -> dict[str, tuple[FamilyCard, str]]:
        """``t2v models make-tiny --family`` names -> (card, builder reference)."""
        return {name: (card, ref) for card in self.all_cards().values() for name, ref in card.tiny.items()}

    def make_tiny_model(self, kind: str, out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
        builders = self.tiny_builders()
        if kind not in builders:
            raise InvalidRequest(f"unknown model family {kind!r}; choose one of: {', '.join(sorted(builders))}",
                                 field="family")
        return load_ref(builders[kind][1])(Path(out).expanduser(), seed=seed, fp16_variant=fp16_variant)


CATALOG = Catalog()  # the process's families: t2v's cards and the plugins' (read once, on first need)
