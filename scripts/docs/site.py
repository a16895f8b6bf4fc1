"""MkDocs hook: the repository's address from pyproject.toml, and links that leave docs/ pointed at the repository.

pyproject.toml's ``[project.urls]`` is the one place the address is written: ``Repository`` becomes the site's
``repo_url`` (and ``edit_uri``), ``Documentation`` its ``site_url``; without them (t2v has no public address yet)
the site names neither. A page may link a file outside docs/ by its relative path (``../deploy/ray/cluster.yaml``),
which works when the Markdown is read in the repository; on the site such a link goes to that file in the
repository, or, with no repository address, becomes the link's text and the file's path in a clone, so the strict
build checks every other link as a page.
Docstrings written with Sphinx roles (``:class:`Video```) show as plain code on the site.
"""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
BRANCH = "main"
# ](../path) or ](../path#anchor): a Markdown link whose target leaves docs/ (not inside code spans or fences:
# those are skipped by rewrite_outside_links)
# Sphinx roles in docstrings (:class:`~t2v.errors.InvalidRequest`) as mkdocstrings renders them: the role
# before a code span, and the "~" that shortens a name
ROLE = re.compile(r":(?:class|func|meth|mod|attr|exc|data|obj|const):<code>~?")
OUTSIDE = re.compile(r"\[([^\]]*)\]\((\.\./[^)\s#]+)(#[^)\s]*)?\)")


def project_urls(root: Path = ROOT) -> dict[str, str]:
    """pyproject.toml's ``[project.urls]``."""
    with open(root / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["project"].get("urls", {}))


def repository_url(root: Path = ROOT) -> str | None:
    """The repository's address, without a trailing slash (a GitHub repository's https address); None when
    pyproject.toml names none."""
    repo = project_urls(root).get("Repository")
    return repo.rstrip("/") if repo else None


def rewrite_outside_links(markdown: str, page_dir: Path, docs_dir: Path, repo: str | None) -> str:
    """``markdown`` with links to files outside ``docs_dir`` turned into links to those files in ``repo``, or
    with no ``repo``, into the link's text and the file's path in the repository."""
    out, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced:
            line = OUTSIDE.sub(lambda m: _repo_link(m, page_dir, docs_dir, repo), line)
        out.append(line)
    return "".join(out)


def _repo_link(match: re.Match, page_dir: Path, docs_dir: Path, repo: str) -> str:
    target = (page_dir / match.group(2)).resolve()
    try:
        target.relative_to(docs_dir.resolve())
        return match.group(0)  # still inside docs/: MkDocs checks it
    except ValueError:
        pass
    relative = target.relative_to(ROOT).as_posix()
    if not target.exists():
        raise FileNotFoundError(f"{match.group(2)} (linked from {page_dir}) does not exist in the repository")
    if not repo:
        return match.group(1) if match.group(1) == f"`{relative}`" else f"{match.group(1)} (`{relative}`)"
    kind = "tree" if target.is_dir() else "blob"
    return f"[{match.group(1)}]({repo}/{kind}/{BRANCH}/{relative}{match.group(3) or ''})"


def on_config(config, **kwargs):
    urls = project_urls()
    repo = repository_url()
    if repo:
        config.repo_url = repo
        config.repo_name = "/".join(repo.split("/")[-2:])
        config.edit_uri = f"edit/{BRANCH}/docs/"
    if urls.get("Documentation"):
        config.site_url = urls["Documentation"].rstrip("/") + "/"
    return config


def on_page_markdown(markdown, page, config, files, **kwargs):
    docs_dir = Path(config.docs_dir)
    page_dir = (docs_dir / page.file.src_uri).parent
    return rewrite_outside_links(markdown, page_dir, docs_dir, config.repo_url)


def on_page_content(html, page, config, files, **kwargs):
    return ROLE.sub("<code>", html)
