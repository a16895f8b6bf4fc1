"""The docs read as plain Markdown in a clone, as the README says: every relative link goes to a file that is
there (no page that only a built site has), no page shows a site-only directive (``::: t2v.generate``), and the
Python API reference lists each public name linked to the file that defines it, which the site's hook turns into
that name's entry."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from tests.docs.conftest import load_hook

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "clients" / "python" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCED = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def relative_links(page: Path) -> list[str]:
    text = CODE.sub("", FENCED.sub("", page.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_goes_to_a_file_in_the_clone(page):
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#", 1)[0]).exists()]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_shows_a_site_only_directive(page):
    assert not re.search(r"^::: ", FENCED.sub("", page.read_text(encoding="utf-8")), re.M)


def defining_file(name: str) -> Path:
    module, _, attr = name.rpartition(".")
    try:
        obj = importlib.import_module(name)
    except ImportError:
        obj = getattr(importlib.import_module(module), attr)
    return Path(inspect.getsourcefile(obj)).resolve()


def test_the_python_reference_links_each_name_to_its_file_and_the_site_documents_it():
    hook = load_hook("python_reference")
    page = ROOT / "docs" / hook.PAGE
    markdown = page.read_text(encoding="utf-8")
    names = hook.entries(markdown)
    assert {"t2v.generate", "t2v.Video", "t2v.GenerationRequest", "t2v.InvalidRequest", "t2v.client.Client"} <= set(names)
    import t2v

    assert set(t2v.__all__) & {"generate", "Video", "GenerationRequest", "InvalidRequest"} <= {
        n.split(".", 1)[1] for n in names}
    for name, target in re.findall(r"^- \[`(t2v[\w.]*)`\]\(([^)]+)\)", markdown, re.M):
        assert (page.parent / target).resolve() == defining_file(name), name
    site = hook.directives(markdown)
    assert [m for m in re.findall(r"^::: (\S+)$", site, re.M)] == names
    assert "::: t2v.client.Client\n    options:\n      inherited_members: true\n      members: [__init__, submit" in site
    assert "- [`" not in site


# the pages for people who change t2v: how it is laid out and tested, how a family is added, how it is measured
FOR_CONTRIBUTORS = {"architecture.md", "adding-a-family.md", "benchmarks.md"}


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in FOR_CONTRIBUTORS],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_pages_say_what_t2v_does_not_which_test_checks_it(page):
    text = page.read_text(encoding="utf-8")
    if page.name == "models.md":  # its "adding a family" steps name the files a new family adds
        text = text.split("## Adding a family", 1)[0]
    named = re.findall(r"tests/[\w/<>*.-]+\.py|\bTests?: `|## (?:How it is )?[Tt]ests?\b|What is tested", text)
    assert named == []
