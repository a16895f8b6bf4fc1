"""The planner's dry run with and without reusing repeated meta operator calls (t2v.planner.counting).

One process; each round measures every model and shape twice, once with the reuse switched off (every meta
kernel and FLOP-counter decomposition run, as before) and once with it on from empty tables, in alternating
order, and checks that both count the same numbers. Medians of the wall time per dry run are reported.

    .venv/bin/python benchmarks/bench_dryrun.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [  # (label, model folder, frames, height, width, forward chunking, frames per VAE call)
    ("tiny ModelScope 16x96x128, low plan", ROOT / "tiny-model", 16, 96, 128, True, 2),
    ("tiny ModelScope 24x128x128", ROOT / "tiny-model", 24, 128, 128, False, 2),
    ("full-size Wan 2.1 1.3B configs 17x240x416", ROOT / "tests/planner/data/wan21-1.3b-configs", 17, 240, 416,
     False, 1),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("T2V_HOME", tempfile.mkdtemp(prefix="t2v-bench-dry-"))
    import torch

    from t2v.families import family_of_folder
    from t2v.planner import counting, memory

    torch.set_num_threads(1)
    real_key = counting.reuse_key

    def once(case, reuse: bool) -> tuple[float, dict]:
        _, folder, frames, height, width, chunking, vae_chunk = case
        counting._CALLS.clear()
        counting._OUTPUTS.clear()
        counting.reuse_key = real_key if reuse else (lambda func, a, k: None)
        try:
            start = time.perf_counter()
            got = memory.measure_now(family_of_folder(folder), str(folder), frames, height, width, 2, chunking,
                                     vae_chunk, False)
            return time.perf_counter() - start, {k: got[k] for k in ("acts", "step_flops", "decode_flops")}
        finally:
            counting.reuse_key = real_key

    for case in CASES:  # warm-up: imports and the meta modules, not timed
        once(case, True)
    times: dict[tuple[str, bool], list[float]] = {}
    for r in range(args.repeats):
        for case in CASES:
            for reuse in ((False, True) if r % 2 == 0 else (True, False)):
                seconds, counted = once(case, reuse)
                times.setdefault((case[0], reuse), []).append(seconds)
                times.setdefault((case[0], "counted", reuse), []).append(counted)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"one thread; medians of {args.repeats}")
    print(f"{'dry run':45s} {'every call run':>15s} {'reused':>9s} {'ratio':>7s}  same numbers")
    for case in CASES:
        off, on = (statistics.median(times[(case[0], b)]) for b in (False, True))
        same = all(c == times[(case[0], "counted", False)][0] for b in (False, True)
                   for c in times[(case[0], "counted", b)])
        print(f"{case[0]:45s} {off:14.2f}s {on:8.2f}s {off / on:6.2f}x  {same}")
        if not same:
            sys.exit(f"{case[0]}: the two ways counted different numbers")


if __name__ == "__main__":
    main()
