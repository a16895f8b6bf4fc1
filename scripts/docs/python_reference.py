"""MkDocs hook: ``reference/python.md`` reads as plain Markdown, a list of the public names each linked to the file
that defines it; on the site each such line becomes that name's mkdocstrings entry, made from its docstrings.

A line of the form ``- [`t2v.generate`](../../src/t2v/library.py)`` is an entry; :data:`OPTIONS` holds the
mkdocstrings options of the entries that need some. This hook runs before ``site.py`` rewrites links that leave
docs/, so it sees the lines as written.
"""

from __future__ import annotations

import re

PAGE = "reference/python.md"
ENTRY = re.compile(r"^- \[`(t2v[\w.]*)`\]\([^)\s]+\)[ \t]*$", re.M)
CLIENT_MEMBERS = ("[__init__, submit, get, list, search, iter_jobs, events, wait, download, cancel, delete, metadata, "
                  "records, image, models, healthy, upload, get_asset, delete_asset, post_process, close]")
OPTIONS: dict[str, dict[str, str]] = {
    "t2v.Video": {"inherited_members": "true"},
    "t2v.GenerationRequest": {"members": "false"},
    "t2v.SequenceRequest": {"members": "false"},
    "t2v.ImageRequest": {"members": "false"},
    "t2v.PostRequest": {"members": "false"},
    "t2v.client.Client": {"inherited_members": "true", "members": CLIENT_MEMBERS},
    "t2v.client.AsyncClient": {"inherited_members": "true", "members": CLIENT_MEMBERS},
    "t2v.client.errors": {"show_root_heading": "true", "heading_level": "3"},
}


def entries(markdown: str) -> list[str]:
    """The names the page lists, in order."""
    return ENTRY.findall(markdown)


def directive(name: str) -> str:
    """``name``'s mkdocstrings block (``::: name`` and its options), set apart by blank lines."""
    lines = [f"::: {name}"]
    if OPTIONS.get(name):
        lines.append("    options:")
        lines += [f"      {key}: {value}" for key, value in OPTIONS[name].items()]
    return "\n" + "\n".join(lines) + "\n"


def directives(markdown: str) -> str:
    """The page with each entry line replaced by its mkdocstrings block."""
    return ENTRY.sub(lambda m: directive(m.group(1)), markdown)


def on_page_markdown(markdown, page, config, files, **kwargs):
    return directives(markdown) if page.file.src_uri == PAGE else markdown
