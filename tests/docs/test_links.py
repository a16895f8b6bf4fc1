"""The README and the docs: one repository address (pyproject.toml's), links that resolve, no machine's paths, the
README's two commands as CI runs them, every page in the site's nav, and the generated references complete."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# every text file that names the repository: README, docs, the notebook, the Space, the site's config
MENTIONS = [README, ROOT / "mkdocs.yml", *DOCS.rglob("*.md"), *(ROOT / "notebooks").glob("*.ipynb"),
            *(ROOT / "deploy" / "spaces").iterdir(), ROOT / "deploy" / "docker" / "Dockerfile"]
# a GitHub (or Colab's github/...) address of a repository named t2v, or a Pages site of an owner
PROJECT_URL = re.compile(r"github(?:\.com)?/([\w.-]+)/(t2v)(?![\w-])|([\w-]+)\.github\.io/t2v")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def urls() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"].get("urls", {})


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def test_no_page_names_a_repository_that_pyproject_does_not():
    """t2v has no public address yet: pyproject.toml names none, and no page, notebook or recipe names one (a
    GitHub repository called t2v, a Colab link to one, or a Pages site)."""
    assert "Repository" not in urls() and "Documentation" not in urls()
    for path in MENTIONS:
        found = [m.group(0) for m in PROJECT_URL.finditer(text_of(path))]
        assert not found, f"{path.relative_to(ROOT)} names {found}, which pyproject.toml does not"


def test_without_an_address_the_site_names_none_and_outside_links_become_paths(hooks):
    site = hooks["site"]
    assert site.repository_url() is None

    class Config:  # what on_config reads and sets
        repo_url = site_url = edit_uri = repo_name = None

    config = site.on_config(Config())
    assert config.repo_url is None and config.site_url is None and config.edit_uri is None
    assert "repo_url" not in yaml.safe_load(text_of(ROOT / "mkdocs.yml"))
    out = site.rewrite_outside_links("the [manifests](../deploy/kubernetes/README.md#install) and "
                                     "[`deploy/ray/cluster.yaml`](../deploy/ray/cluster.yaml)", DOCS, DOCS, None)
    assert out == "the manifests (`deploy/kubernetes/README.md`) and `deploy/ray/cluster.yaml`"


#: What ships or is run besides the pages: the package (its model's configs included), the client, benchmarks, scripts.
SHIPPED = [p for top in ("src", "clients", "benchmarks", "scripts", "deploy") for p in (ROOT / top).rglob("*")
           if p.is_file() and p.suffix in (".py", ".json", ".md", ".toml", ".txt", ".sh", ".yml", ".yaml")]


def test_no_page_shows_a_path_of_one_machine():
    # deploy/ is left out: its image and cluster files name paths inside the container or VM they set up
    for path in [README, *DOCS.rglob("*.md"), *(ROOT / "notebooks").glob("*.ipynb"),
                 *(p for p in SHIPPED if "deploy" not in p.relative_to(ROOT).parts[:1])]:
        for bad in ("/work/", "/tmp/pytest", "/home/", "/root/", "pytest-of-"):
            assert bad not in text_of(path), f"{path.relative_to(ROOT)} shows {bad!r}, a path of one machine"


def test_no_page_tells_how_the_project_was_made():
    wording = re.compile(r"issue #\d|\bGPU lent\b|\blent a GPU\b|device tool|tool library|helper session|"
                         r"\bthis session\b|coding session|\bthe lead engineer\b", re.I)
    for path in [README, *DOCS.rglob("*.md"), *(ROOT / "notebooks").glob("*.ipynb"), *SHIPPED]:
        m = wording.search(text_of(path))
        assert not m, f"{path.relative_to(ROOT)}: {m.group(0)!r} speaks of how t2v was made, not what it does"


def local_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", text_of(path), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:|#|<", t)]


def test_readme_links_resolve_inside_the_repository():
    links = local_links(README)
    assert any(t.startswith("docs/") for t in links), "the README links into the docs"
    for target in links:
        file = (ROOT / target.split("#")[0]).resolve()
        assert file.exists(), f"README links {target!r}, which does not exist"
        assert ROOT in file.parents, f"README links {target!r}, outside the repository"


def test_docs_links_outside_docs_stay_in_the_repository():
    for page in DOCS.rglob("*.md"):
        for target in local_links(page):
            file = (page.parent / target.split("#")[0]).resolve()
            if DOCS not in file.parents:  # the site links these to the repository (scripts/docs/site.py)
                assert ROOT in file.parents and file.exists(), f"{page.relative_to(ROOT)} links {target!r}"


def test_readme_keeps_the_setup_command_and_the_test_command_ci_runs():
    readme = text_of(README)
    assert ('bash scripts/setup.sh && .venv/bin/t2v generate "a red circle moving right" --model t2v-shapes '
            '-o circle.mp4') in readme
    ci = [line for line in text_of(ROOT / ".ci" / "run").splitlines() if "pytest" in line and not line.startswith("#")]
    assert ci, ".ci/run runs pytest"
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert any(shlex.split(ci[-1]) == shlex.split(b.strip()) for b in blocks), \
        f"the README's test command must be the one .ci/run runs: {ci[-1]}"
    assert len(readme.splitlines()) < 120, "the README stays short: the rest belongs in docs/"


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in nav_pages(item)]
    if isinstance(node, dict):
        return [p for value in node.values() for p in nav_pages(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists_or_is_generated(hooks):
    config = yaml.safe_load(text_of(ROOT / "mkdocs.yml"))
    nav = nav_pages(config["nav"])
    generated = {hooks["cli_reference"].PAGE, hooks["rest_reference"].PAGE}
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - set(nav) == set(), "pages missing from mkdocs.yml's nav"
    assert set(nav) - pages - generated == set(), "nav entries with no page"
    for guide in ("install.md", "client.md", "api.md", "architecture.md", "getting-started.md"):
        assert guide in nav


def test_the_cli_reference_lists_every_command_and_option(hooks):
    cli = hooks["cli_reference"]
    root = cli.root_command()
    page = cli.markdown(root)
    commands = list(cli.walk(root))
    assert len(commands) > 20
    for path, command in commands:
        assert f"`{' '.join(path)}` {{ #{cli.anchor(path)} }}" in page
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False) and param.name != "help":
                assert f"`{param.opts[0]}`" in page, f"{' '.join(path)} {param.opts[0]} is missing"
    generate = page[page.index("{ #t2v-generate }"):page.index("{ #t2v-extend }")]
    assert "| `--frames` `-f` | integer" in generate and "Env: `T2V_MODEL`" in generate
    assert "&lt;time&gt;" in generate, "help text is escaped, not swallowed as HTML"


def test_the_rest_reference_covers_every_route_and_schema(hooks):
    rest = hooks["rest_reference"]
    spec = rest.openapi()
    page = rest.markdown(spec)
    for path, item in spec["paths"].items():
        for method in item:
            if method in rest.METHODS:
                assert f"### {method.upper()} `{path}` {{ #{rest.op_anchor(method, path)} }}" in page
    for name in spec["components"]["schemas"]:
        assert f"### {name} {{ #{rest.anchor(name)} }}" in page
    assert "/v1/videos" in spec["paths"] and "[Job](#schema-job)" in page


@pytest.mark.parametrize("markdown, expected", [
    ("see [the chart](../deploy/ray/cluster.yaml) here", "/blob/main/deploy/ray/cluster.yaml)"),
    ("the [manifests](../deploy/kubernetes/README.md#install)", "/blob/main/deploy/kubernetes/README.md#install)"),
    ("a [page](api.md) stays", "](api.md)"),
    ("```\n[x](../deploy/ray/cluster.yaml)\n```\n", "](../deploy/ray/cluster.yaml)"),
])
def test_links_that_leave_docs_go_to_the_repository(hooks, markdown, expected):
    site = hooks["site"]
    out = site.rewrite_outside_links(markdown, DOCS, DOCS, "https://git.example/o/t2v")
    assert expected in out


def test_a_link_to_a_missing_file_outside_docs_fails_the_build(hooks):
    with pytest.raises(FileNotFoundError, match="no-such-file"):
        hooks["site"].rewrite_outside_links("[x](../no-such-file.txt)", DOCS, DOCS, "https://git.example/o/t2v")
