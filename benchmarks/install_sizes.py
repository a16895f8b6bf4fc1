"""What ``pip install t2v`` and each extra bring: the distributions they resolve to in this environment and their
size on disk, from the installed packages' metadata (no download; the files each package records, so without the
bytecode Python compiles on first import). Run in the venv scripts/setup.sh builds (it
has every extra installed), e.g.::

    .venv/bin/python benchmarks/install_sizes.py            # a table for docs/install.md
    .venv/bin/python benchmarks/install_sizes.py --list ui  # the distributions an extra adds to the core

The CPU build of torch is what is measured here; a CUDA build adds several GB of NVIDIA libraries.
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

EXTRAS = ("serve", "ui", "desktop", "post", "train", "postgres", "mongodb", "s3", "ray", "gguf", "upscale", "rife", "all",
          "dev")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str], extras: tuple[str, ...] = ()) -> set[str]:
    """The installed distributions ``requirements`` resolve to (markers evaluated here, extras followed only where
    a requirement names them, as pip does)."""
    seen: set[str] = set()
    todo = [(Requirement(r), extras) for r in requirements]
    while todo:
        req, with_extras = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", *with_extras)):
            continue
        name = norm(req.name)
        if name in seen and not req.extras:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        todo += [(Requirement(r), tuple(req.extras)) for r in dist.requires or []]
    return seen


def requirements_of(extra: str | None) -> list[str]:
    """t2v's core requirements, or those of ``extra`` (which may name t2v's other extras)."""
    out = []
    for r in metadata.requires("t2v") or []:
        marker = str(Requirement(r).marker or "")
        if (extra is None and "extra" not in marker) or (extra is not None and f'extra == "{extra}"' in marker):
            out.append(r)
    return out


def resolved(extra: str | None) -> set[str]:
    """Distributions of ``pip install t2v`` (``extra`` None) or ``pip install 't2v[extra]'``, t2v itself aside."""
    names = closure(requirements_of(None))
    if extra is not None:
        for r in requirements_of(extra):
            req = Requirement(r)
            if norm(req.name) == "t2v":  # t2v[serve] inside another extra
                names = names.union(*(resolved(e) for e in req.extras))
            else:
                names |= closure([r], (extra,))
    return names - {"t2v"}


def size(names: set[str]) -> int:
    total = 0
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        total += sum(f.size or 0 for f in files)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--list", metavar="EXTRA", help="List the distributions EXTRA adds to the core.")
    args = parser.parse_args()
    core = resolved(None)
    if args.list:
        print("\n".join(sorted(resolved(args.list) - core)))
        return
    print("| install | packages | size on disk | adds to the core |")
    print("|---|---:|---:|---|")
    print(f"| `pip install t2v` (the core) | {len(core)} | {size(core) / 2**20:,.0f} MB | |")
    for extra in EXTRAS:
        names = resolved(extra)
        added = names - core
        top = ", ".join(sorted(added, key=lambda n: -size({n}))[:5])
        print(f"| `t2v[{extra}]` | {len(names)} | {size(names) / 2**20:,.0f} MB | +{len(added)} "
              f"({size(added) / 2**20:,.0f} MB): {top}{', ...' if len(added) > 5 else ''} |")
    client = closure(client_requirements())
    print(f"| `pip install ./clients/python` (t2v-client and {len(client)} dependencies) | {len(client) + 1} | "
          f"{size(client) / 2**20:,.0f} MB | |")


def client_requirements() -> list[str]:
    """The dependencies ``clients/python/pyproject.toml`` declares (the client's own files are a few KB)."""
    import tomllib

    with open(Path(__file__).resolve().parent.parent / "clients" / "python" / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


if __name__ == "__main__":
    main()
