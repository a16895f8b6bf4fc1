"""Step caches side by side with the uncached run: denoising time (median), speed-up and frame difference.

One process, one model (loaded once; every run gets its own private view of the denoiser), the settings
taken in turn (uncached, cache A, cache B, ..., uncached, ...) for ``--runs`` rounds, so a slow spell of the
machine hits them all alike. Reports the median of the runs' ``denoise_s`` (t2v's own stage timing), the
ratio to uncached, and the largest difference of the frames from the uncached ones (0-255).

    .venv/bin/python benchmarks/bench_cache.py --model t2v-shapes --runs 5 \\
        --cache deepcache:interval=2 --cache deepcache:interval=3 --cache deepcache:interval=4
    .venv/bin/python benchmarks/bench_cache.py --tiny wan --threads 1 --count-linear --cache fbc --cache pab

``--tiny FAMILY`` builds the family's tiny random-weight model (``t2v models make-tiny``): its timings only
show that a cache skips work, not what it would save on a real model.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="t2v-shapes", help="model to time (default t2v-shapes)")
    parser.add_argument("--tiny", help="time a tiny random-weight model of this kind instead (e.g. wan, cogvideox)")
    parser.add_argument("--cache", action="append", default=[], help="a step cache to time (repeatable)")
    parser.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--steps", type=int, help="denoising steps (model default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", default="a red circle moving left")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--count-linear", action="store_true",
                        help="also count nn.Linear calls per run (the work a cache skips; text encoder included)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from t2v import generate
    from t2v.requests import GenerationRequest

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model
    if args.tiny:
        from t2v.families import make_tiny_model

        model = str(make_tiny_model(args.tiny, Path(tempfile.mkdtemp(prefix="t2v-bench-cache-")) / args.tiny, seed=0))
    settings = [None, *args.cache]
    calls = [0]
    if args.count_linear:
        linear = torch.nn.Linear.forward

        def counting(self, *a, **k):
            calls[0] += 1
            return linear(self, *a, **k)

        torch.nn.Linear.forward = counting
    counts = {}

    def run(cache):
        calls[0] = 0
        r = generate(GenerationRequest(prompt=args.prompt, model=model, seed=args.seed, formats=(), cache=cache,
                                       num_inference_steps=args.steps))
        counts[cache] = calls[0]
        return r.record["timings"]["denoise_s"], r.frames, r.request

    run(None)  # warm-up: loading, first-call allocations
    times = {s: [] for s in settings}
    frames, request = {}, None
    for _ in range(args.runs):
        for s in settings:
            t, f, request = run(s)
            times[s].append(t)
            frames[s] = f
    print(f"model {args.tiny or model}: {request.width}x{request.height}, {request.num_frames} frames, "
          f"{request.num_inference_steps} steps, guidance {request.guidance_scale}; {args.runs} runs each; "
          f"{torch.get_num_threads()} threads; CPU {cpu_name()}; torch {torch.__version__}")
    base = statistics.median(times[None])
    print(f"{'cache':56} {'denoise s (median)':>18} {'x uncached':>10} {'speed-up':>9} {'max |diff|':>10}"
          + (f" {'Linear calls':>12}" if args.count_linear else ""))
    for s in settings:
        med = statistics.median(times[s])
        diff = int(np.abs(frames[s].astype(int) - frames[None].astype(int)).max())
        name = "uncached" if s is None else GenerationRequest(prompt="x", cache=s).cache
        print(f"{name:56} {med:18.3f} {med / base:10.2f} {base / med:8.2f}x {diff:10d}"
              + (f" {counts[s]:12d}" if args.count_linear else ""))


if __name__ == "__main__":
    main()
