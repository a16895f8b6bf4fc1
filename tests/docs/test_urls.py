"""Every web address in the repository is one that exists for someone else: a third-party project, model page or
standard, or a name that can never be anyone's (loopback, private and literal IPs, reserved names such as
``.example`` and ``.invalid``, single-label hosts of a local network, templates). t2v has no public address yet,
so any other host, a t2v repository or Pages site included, is an invented one and fails."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: third-party hosts the docs, cards and recipes may send a reader to
HOSTS = {
    "huggingface.co", "pytorch.org", "download.pytorch.org", "docs.pytorch.org", "pypi.org", "www.python.org",
    "docs.python.org", "www.apache.org", "ray-project.github.io", "docs.ray.io", "docs.nvidia.com",
    "www.standardwebhooks.com", "open.bigmodel.cn", "colab.research.google.com", "fastapi.tiangolo.com",
    "www.gradio.app", "www.mkdocs.org", "squidfunk.github.io", "www.rfc-editor.org", "datatracker.ietf.org",
    "spec.openapis.org", "json-schema.org", "platform.openai.com", "www.w3.org", "img.shields.io", "docs.astral.sh",
    "www.nvidia.com",
}
#: host suffixes of third-party services whose addresses are made per use (Gradio's share links)
SUFFIXES = (".gradio.live", ".hf.space")
#: GitHub owners of the projects t2v builds on or cites (models, libraries)
GITHUB_OWNERS = {
    "huggingface", "pytorch", "Wan-Video", "Lightricks", "THUDM", "zai-org", "Tencent", "Tencent-Hunyuan",
    "SkyworkAI", "guoyww", "modelscope", "ali-vilab", "gradio-app", "fastapi", "ray-project", "xinntao", "nihui",
    "tntwise", "openai", "standard-webhooks", "moto-project", "encode", "pydantic", "sqlalchemy", "mkdocs",
}
#: names no one can register (RFC 2606, RFC 6761, ICANN's .internal) and the test client's host
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".internal", ".local", "example.com",
                     "example.org", "example.net")
URL = re.compile(r"https?://(?P<host>\[[^\]\s]*\]|[^\s/:?#\"'<>`\\)\],;|]*)(?::[^\s/?#\"'<>`]*)?(?P<path>/[^\s\"'<>`)\]]*)?")


def files() -> list[Path]:
    """The repository's tracked files and the new ones git would track (not the ignored ones)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return [ROOT / name for name in sorted(set(out.split("\0"))) if name and (ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary: images, videos, weights
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_ip(host: str) -> bool:
    """An IP literal, in any spelling the address checks test (``[::1]``, ``127.1``, ``0x7f000001``, ``2130706433``)."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)(\.(0x[0-9a-fA-F]+|\d+)){0,3}", host))


def refused(url: str) -> str | None:
    """Why ``url``'s host is not allowed, or None when it is."""
    m = URL.match(url)
    host, path = m.group("host"), m.group("path") or ""
    if not host or any(mark in host for mark in ("{", "$", "%", "...")):
        return None  # no host (a malformed address a test feeds in) or a template filled in at run time
    lower = host.lower().rstrip(".")
    if is_ip(lower) or "." not in lower or lower == "testserver":
        return None  # loopback, private and literal addresses; a local network's single-label names
    if lower.endswith(RESERVED_SUFFIXES):
        return None
    if lower in HOSTS or lower.endswith(SUFFIXES):
        return None
    if lower in ("github.com", "www.github.com"):
        owner = path.strip("/").split("/")[0]
        return None if owner in GITHUB_OWNERS else f"GitHub owner {owner!r} is not a known third party"
    return f"host {host!r} is not a known third party"


def test_every_address_in_the_repository_is_a_third_party_or_reserved_one():
    bad = []
    scanned = 0
    for path in files():
        text = text_of(path)
        if text is None:
            continue
        scanned += 1
        for number, line in enumerate(text.replace("\\.", ".").splitlines(), 1):
            for m in URL.finditer(line):
                why = refused(m.group(0))
                if why:
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {m.group(0)} ({why})")
    assert scanned > 300, f"only {scanned} text files found: is git listing the repository?"
    assert not bad, "addresses that are not known third parties:\n" + "\n".join(bad)


@pytest.mark.parametrize("url", [  # written as templates, so that the scan above skips them
    f"https://{'github.com'}/t2v-project/t2v", f"https://{'t2v-project.github.io'}/t2v/",
    f"https://{'github.com'}/someone/t2v@main", f"https://{'t2v.dev'}/docs", f"https://{'pypi.org.evil.com'}/x",
])
def test_an_invented_address_is_refused(url):
    assert refused(url)


@pytest.mark.parametrize("url", [
    "https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "https://github.com/guoyww/AnimateDiff",
    "http://127.0.0.1:8000/v1", "http://[::1]:8080/", "http://0x7f000001/", "https://app.example.com/path",
    "http://no-such-host.invalid/hook", "http://gpu-box:8000", "http://{host}:{port}/", "https://abc.gradio.live",
])
def test_a_third_party_or_reserved_address_is_allowed(url):
    assert refused(url) is None
