"""`mkdocs build --strict`, offline, as a user or CI builds the site: a broken link, a missing page or anchor, or
a docstring the API reference cannot render fails it. The generated references are checked in the HTML."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def needs_mkdocs():
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
        import material  # noqa: F401
    except ImportError as e:
        message = f"the docs build needs mkdocs, mkdocs-material and mkdocstrings[python] (the dev extra): {e}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def text(page: Path) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    needs_mkdocs()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1",
           "T2V_HOME": str(tmp_path_factory.mktemp("docs-home")), "no_proxy": "*",
           # nothing may be fetched: any attempt fails fast instead of waiting for a network
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    for name in ("T2V_DATABASE_URL", "T2V_STORAGE_URL", "T2V_RECORDS_URL", "T2V_EXECUTOR"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out


def test_every_guide_is_built(site):
    for page in ("getting-started", "install", "usage", "python", "models", "speed", "post", "image-mode",
                 "training", "model-card", "ui", "desktop", "server", "api", "client", "records", "deploy",
                 "scale-out", "architecture", "benchmarks"):
        assert (site / page / "index.html").is_file(), f"{page}.md was not built"
    assert (site / "screenshots" / "ui.png").stat().st_size > 10_000
    home = text(site / "index.html")
    assert "Getting started" in home and "reference/cli" in (site / "index.html").read_text()
    assert "Go to repository" not in (site / "index.html").read_text(), "pyproject.toml names no repository"


def test_the_cli_reference_is_made_from_the_commands(site):
    page = text(site / "reference" / "cli" / "index.html")
    for command in ("t2v generate", "t2v serve", "t2v models list", "t2v keys create", "t2v cache clear"):
        assert command in page
    assert "--frames" in page and "T2V_MODEL" in page and "Number of frames" in page


def test_the_rest_reference_is_made_from_the_openapi_document(site):
    page = text(site / "reference" / "rest" / "index.html")
    for route in ("POST /v1/videos", "GET /v1/videos/{job_id}/events", "DELETE /v1/videos/{job_id}", "GET /healthz"):
        assert route in page
    assert "Queue a generation job" in page and "idempotency_key" in page


def test_the_python_reference_is_made_from_the_docstrings(site):
    page = text(site / "reference" / "python" / "index.html")
    for name in ("t2v.generate", "t2v.Video", "t2v.GenerationRequest", "t2v.InvalidRequest", "t2v.client.Client"):
        assert name in page
    assert "the nearest valid value" in page  # generate's docstring
    assert "submit" in page and "download" in page  # the client's methods, inherited from t2v_client
    assert ":class:" not in page and ":func:" not in page, "Sphinx roles show as plain code"


def test_links_outside_docs_name_the_file_in_the_repository(site):
    scale_out = (site / "scale-out" / "index.html").read_text()
    assert "(<code>deploy/kubernetes/README.md</code>)" in scale_out
    assert not re.search(r'<a href="(\.\./)+deploy/[^"]+\.(md|yaml)', scale_out), "a link left docs/ unrewritten"
