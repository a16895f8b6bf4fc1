"""Text from docstrings, help strings and OpenAPI descriptions made safe as Markdown (shared by the docs hooks).

Outside code spans ``<`` ``>`` ``&`` become entities (so ``<id>`` shows instead of vanishing as an HTML tag) and
``*`` is escaped; inside a code span the text is left alone, since Markdown shows it literally there. reST's
double backticks become Markdown's single ones, and Rich's escaped bracket ``\\[`` a plain one.
"""

from __future__ import annotations

import inspect
import re

CODE = re.compile(r"(`+)(.+?)\1", re.S)


def _escape_plain(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
            .replace("[", "\\[").replace("]", "\\]"))


def escape(text: str) -> str:
    """``text`` as Markdown that shows exactly these characters (code spans kept as code)."""
    text = (text or "").replace("\\[", "[").replace("``", "`")
    out, last = [], 0
    for m in CODE.finditer(text):
        out.append(_escape_plain(text[last:m.start()]))
        out.append(f"`{m.group(2)}`" if "`" not in m.group(2) else m.group(0))
        last = m.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def cell(text: str) -> str:
    """``text`` on one line, safe in a Markdown table cell."""
    return escape(re.sub(r"\s+", " ", text or "").strip()).replace("|", "\\|")


def paragraphs(text: str) -> str:
    """A docstring or help text as Markdown paragraphs: each paragraph joined onto one line (Click's ``\\b``
    markers dropped)."""
    text = inspect.cleandoc(text or "").replace("\b\n", "").replace("\b", "")
    parts = [re.sub(r"\s*\n\s*", " ", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(escape(p) for p in parts)


def first_sentence(text: str) -> str:
    """The first sentence of ``text``, on one line, for a summary list."""
    one = re.sub(r"\s+", " ", inspect.cleandoc(text or "")).strip()
    return cell(re.split(r"(?<=[a-z0-9)])\.\s", one, maxsplit=1)[0].rstrip("."))


def add_page(files, config, path: str, content: str):
    """A docs hook's ``on_files``: the generated page ``path`` added to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, path, content=content))
    return files
