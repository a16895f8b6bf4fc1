"""The model's figures are stated once, in the model card, and quoted elsewhere only as the card states them: a
paragraph that links the card and quotes a figure (a percentage, a count of clips, minutes) quotes one the card
gives; the pages a newcomer reads first (the README, Getting started, the index) quote only its "At a glance"
figures, those of the shipped model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARD = ROOT / "docs" / "model-card.md"
FIRST_PAGES = ("README.md", "docs/getting-started.md", "docs/index.md")
# docs/benchmarks.md quotes its own measurements and links the card for the training run
OTHER_PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")
                     if p.name not in ("model-card.md", "benchmarks.md", "getting-started.md", "index.md"))
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s*(%|clips\b|minutes\b|min\b)")
CODE = re.compile(r"`[^`]*`")
SLASHED = re.compile(r"(\d[\d.]*)(?=(?:\s*/\s*\d[\d.]*)+\s*%)")  # "97.5 / 97.5 / 100%": each one a percentage


def figures(text: str) -> set[tuple[str, str]]:
    """The (number, unit) figures of ``text``, code spans left out; "min" counts as minutes."""
    found = FIGURE.findall(SLASHED.sub(r"\1%", CODE.sub("", text)))
    return {(number.replace(",", ""), "minutes" if unit == "min" else unit) for number, unit in found}


def glance() -> dict[str, str]:
    """The card's "At a glance" table: figure -> value."""
    section = CARD.read_text(encoding="utf-8").split("## At a glance", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {name.strip(): value.strip() for name, value in rows[1:]}


def paragraphs_linking_the_card(page: str) -> list[str]:
    """The paragraphs of ``page`` (outside code blocks) that link the model card."""
    text = re.sub(r"```.*?```", "", (ROOT / page).read_text(encoding="utf-8"), flags=re.S)
    return [p for p in re.split(r"\n\s*\n", text) if re.search(r"\]\([^)]*model-card\.md", p)]


def test_figures_are_read_as_written():
    assert figures("colour / direction / shape 97.5 / 97.5 / 100% on 40 clips in 10 min") == {
        ("97.5", "%"), ("100", "%"), ("40", "clips"), ("10", "minutes")}
    assert figures("`--seeds 8` in 1,024 clips") == {("1024", "clips")}


def test_the_card_states_the_shipped_models_figures_at_a_glance():
    table = glance()
    assert {"held-out clips evaluated", "colour right", "direction right", "shape right",
            "colour kept in every frame"} <= set(table)
    assert all(figures(value) for name, value in table.items() if name != "the misread combination")
    card = CARD.read_text(encoding="utf-8")
    # the shape figure is the two seed sets of the v6 table together: 97.5% and 95.0% of 80 clips each
    v6 = re.findall(r"^\| \*\*v6\*\* \| [\d-]+ \| \*\*([\d.]+)%\*\* \| \*\*([\d.]+)%\*\* \| \*\*([\d.]+)%\*\*", card, re.M)
    assert len(v6) == 2
    for column, name in enumerate(("colour right", "direction right", "shape right")):
        together = sum(float(row[column]) for row in v6) / 2
        assert table[name] == f"{together:.1f}%".replace("100.0%", "100%"), name


@pytest.mark.parametrize("page", FIRST_PAGES)
def test_first_pages_quote_only_the_cards_figures_at_a_glance(page):
    allowed = set().union(*(figures(v) for v in glance().values()))
    for paragraph in paragraphs_linking_the_card(page):
        assert figures(paragraph) <= allowed, (page, figures(paragraph) - allowed, paragraph[:200])


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_other_pages_quote_figures_the_card_gives(page):
    stated = figures(CARD.read_text(encoding="utf-8"))
    for paragraph in paragraphs_linking_the_card(page):
        assert figures(paragraph) <= stated, (page, figures(paragraph) - stated, paragraph[:200])


def test_the_readme_quotes_the_card():
    quoted = [p for p in paragraphs_linking_the_card("README.md") if figures(p)]
    assert quoted, "the README's summary of t2v-shapes links the card"
