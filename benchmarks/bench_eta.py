"""How close a run's ETA is: the ETA of every denoise and decode event against the time actually left (until the
export starts), for runs of one request in a row, in one process and one ``T2V_HOME`` (the first run's ETA is
the estimate; later ones learn from the earlier runs, :mod:`t2v.planner.steptime`).

    T2V_HOME=$(mktemp -d) .venv/bin/python benchmarks/bench_eta.py --model fullsize-ms --frames 8 --steps 3 --runs 2

(``benchmarks/fullsize.py`` builds the full-size ModelScope folder; t2v-shapes works too.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def one_run(args) -> None:
    import t2v

    events = []
    t0 = time.perf_counter()
    request = t2v.GenerationRequest.create(prompt=args.prompt, model=args.model, num_frames=args.frames, width=args.size,
                                           height=args.size, num_inference_steps=args.steps, seed=1, formats=())
    result = t2v.generate(request, on_progress=lambda e: events.append((time.perf_counter() - t0, e)))
    end = next((t for t, e in events if e.stage == "export"), time.perf_counter() - t0)
    for t, e in events:
        if e.stage in ("denoise", "decode"):
            eta = "-" if e.eta_s is None else f"{e.eta_s:.2f}"
            print(f"{t:8.2f} s  {e.stage:8} {e.step:3}/{e.total:<3} eta {eta:>8}  actually left {end - t:8.2f}")
    print("timings:", result.record["timings"], "dtype:", result.record.get("dtype"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="t2v-shapes")
    ap.add_argument("--prompt", default="a red circle moving right")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=None, help="width and height (default: the model's)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    for n in range(args.runs):
        print(f"run {n + 1}")
        one_run(args)


if __name__ == "__main__":
    main()
