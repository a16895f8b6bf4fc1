"""--compile and --attention: eager and compiled requests side by side in one process, medians and ratios.

One process loads the model once, then runs: an eager warm-up, the first compiled request (its extra time is
the compile), and ``--runs`` rounds alternating eager and compiled requests of the same shape (warm: the
compiled blocks are reused). Per-step time is the denoise stage's time over the steps; the frames of the last
eager and compiled runs are compared. ``--attention KERNEL`` adds a third side with that kernel (eager).

    flock /tmp/t2v-cpu.lock .venv/bin/python benchmarks/bench_compile.py --model t2v-shapes
    .venv/bin/t2v models make-tiny --family wan /tmp/wan
    flock /tmp/t2v-cpu.lock .venv/bin/python benchmarks/bench_compile.py --model /tmp/wan --steps 10
    .venv/bin/python benchmarks/bench_compile.py --model t2v-shapes --unet regional   # the UNet's blocks instead
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="t2v-shapes", help="registry id or model folder (default t2v-shapes)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="width and height")
    parser.add_argument("--runs", type=int, default=3, help="warm rounds (eager, compiled) after the first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--attention", default=None, help="also time this kernel (eager), e.g. flash or sage")
    parser.add_argument("--unet", choices=("whole", "regional"), default="whole",
                        help="UNet families: compile the whole UNet (t2v's choice) or its blocks (accel.UNET_BLOCKS)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import numpy as np
    from torch._dynamo.utils import counters

    from t2v.bench.cpu import machine
    from t2v.sampling import accel
    from t2v import generate
    from t2v.requests import GenerationRequest

    accel.UNET_REGIONAL = args.unet == "regional"
    fields = dict(prompt="a red circle moving right", model=args.model, seed=0, num_inference_steps=args.steps,
                  num_frames=args.frames, width=args.size, height=args.size, device=args.device, dtype=args.dtype,
                  formats=())

    def run(**kw):
        t0 = time.perf_counter()
        result = generate(GenerationRequest.create(**fields, **kw))
        wall = time.perf_counter() - t0
        return {"wall_s": wall, "denoise_s": result.record["timings"]["denoise_s"], "frames": result.frames,
                "warnings": result.record.get("warnings") or []}

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    log(f"machine: {machine()}")
    log(f"model {args.model}: {args.size}x{args.size}, {args.frames} frames, {args.steps} steps ({args.unet})")
    run()  # load and warm up
    first = run(compile=True)
    log(f"first compiled request: {first['wall_s']:.2f} s (denoise {first['denoise_s']:.2f} s); "
        f"graphs compiled: {counters['stats'].get('unique_graphs', 0)}; warnings: {first['warnings'] or 'none'}")
    sides = {"eager": [], "compiled": []}
    if args.attention:
        sides[args.attention] = []
    last = {}
    for i in range(args.runs):
        for side in sides:
            kw = {"compile": True} if side == "compiled" else {"attention": side} if side != "eager" else {}
            r = run(**kw)
            sides[side].append(r)
            last[side] = r["frames"]
            log(f"round {i + 1} {side:>9}: {r['wall_s']:.2f} s, denoise {r['denoise_s']:.2f} s")
    graphs_after = counters["stats"].get("unique_graphs", 0)

    med = {side: {"wall_s": statistics.median(r["wall_s"] for r in rs),
                  "step_s": statistics.median(r["denoise_s"] for r in rs) / args.steps} for side, rs in sides.items()}
    eager, comp = med["eager"], med["compiled"]
    compile_s = first["wall_s"] - comp["wall_s"]
    saved = eager["wall_s"] - comp["wall_s"]
    diff = int(np.abs(last["eager"].astype(int) - last["compiled"].astype(int)).max())
    log("")
    log(f"{'side':>9} | {'request (s)':>11} | {'per step (ms)':>13}")
    for side, m in med.items():
        log(f"{side:>9} | {m['wall_s']:11.3f} | {m['step_s'] * 1000:13.2f}")
    log(f"compiled/eager per step: {comp['step_s'] / eager['step_s']:.3f}; compile overhead (first request "
        f"minus a warm one): {compile_s:.1f} s; graphs compiled after the warm rounds: {graphs_after}")
    if saved > 0:
        log(f"a warm compiled request saves {saved:.2f} s: compile pays off after {compile_s / saved:.0f} requests "
            f"of this shape")
    else:
        log("a warm compiled request is not faster: compile never pays off at this shape")
    log(f"max frame difference compiled vs eager: {diff}/255")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "medians": med,
                                               "first_compiled_s": first["wall_s"], "compile_s": compile_s,
                                               "frame_diff": diff, "graphs": graphs_after}, indent=2))


if __name__ == "__main__":
    main()
