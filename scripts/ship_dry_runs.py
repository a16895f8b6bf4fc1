"""Measure the shipped models' reference dry runs again and write them to src/t2v/planner/shipped-dry-runs.json.

Run after a change to a family's ``measure`` (or to the torch or diffusers version) when
tests/planner/test_first_run.py says the shipped numbers differ from a fresh dry run:

    .venv/bin/python scripts/ship_dry_runs.py [model folders...]   (default: the shipped t2v-shapes model)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from t2v.families import family_of_folder
from t2v.models.registry import lookup
from t2v.planner import memory, shipped


def measure_all(path: Path) -> dict:
    """The reference dry runs of the model in ``path`` for every :data:`t2v.planner.shipped.VARIANTS`, measured now
    (a family whose estimates need dry runs at more lengths, ``fits_reference``, still makes those on first use)."""
    family = family_of_folder(path)
    frames, side = family.reference_shape(path)
    runs = {}
    for batch, chunking, half in shipped.VARIANTS:
        run = memory.measure_now(family, str(path), frames, side, side, batch, chunking, 1, half)
        runs[shipped.key(path, frames, side, side, batch, chunking, 1, half)] = json.loads(json.dumps(run))
    return runs


def main(paths: list[Path]) -> None:
    runs: dict = {}
    for path in paths:
        runs.update(measure_all(path))
    tmp = shipped.FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": shipped.VERSION, "runs": runs}, indent=1, sort_keys=True) + "\n",
                   encoding="utf-8")
    tmp.replace(shipped.FILE)
    print(f"wrote {len(runs)} dry runs to {shipped.FILE}")


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or [lookup("t2v-shapes").bundled_path])
