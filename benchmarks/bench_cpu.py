"""CPU: one text-to-video request through stock diffusers and through t2v, per stage, with peak memory.

Both sides make the same clip (256x256, 8 frames, 2 DDIM steps, guidance 9, seed 0, MP4) from the same model
folder, each run in a fresh subprocess (``python -m t2v.bench.worker``), alternating stock, t2v, stock, t2v,
...; medians are reported and the frames of the two sides are compared. The code is in ``t2v.bench``
(``t2v bench`` runs the small version); this script adds the full-size model, built once by
``benchmarks/fullsize.py`` (1.41 B-parameter ModelScope UNet, SD VAE, CLIP ViT-H-sized text encoder,
random weights). ``--small`` runs the same comparison on a tiny model built by ``t2v.models.tiny.make_tiny``.

    .venv/bin/python benchmarks/bench_cpu.py --small                   # tiny model, seconds
    .venv/bin/python benchmarks/bench_cpu.py --runs 2 --low --json out.json   # full size
    .venv/bin/python benchmarks/bench_cpu.py --runs 2 --auto --json out.json  # + t2v's default plan each round
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from t2v.bench import FULL_SIZE, PROMPT, SMALL_SIZE  # noqa: E402
from t2v.bench import cpu, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the full-size one, built if missing; --small: a tiny one)")
    parser.add_argument("--small", action="store_true", help="tiny model (t2v.models.tiny.make_tiny): the same comparison in seconds")
    parser.add_argument("--runs", type=int, help="runs per side, alternating (default 2; --small: 1)")
    parser.add_argument("--bf16", action="store_true", help="also one t2v run with dtype=bf16 (and its frame difference)")
    parser.add_argument("--auto", action="store_true",
                        help="each round also a t2v run with t2v's default plan (dtype and memory plan auto, as t2v "
                             "picks them on this machine: bf16 on a CPU with AVX-512 BF16 or AMX)")
    parser.add_argument("--low", action="store_true", help="also one t2v run with the 'low' memory plan")
    parser.add_argument("--fixed-mmap", action="store_true",
                        help="each round also a t2v run with a fixed 128 KiB mmap threshold (T2V_MMAP_THRESHOLD_KB=128)")
    parser.add_argument("--max-load", type=float, default=1.0, help="wait while the 1-min load is above this")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for a quiet machine before each run")
    parser.add_argument("--max-others", type=float, default=0.25,
                        help="redo a run when other processes used more than this many cores during it on average")
    parser.add_argument("--retries", type=int, default=2, help="how many times a contaminated run is redone")
    parser.add_argument("--json", help="write all results here")
    # worker mode (internal; kept for old command lines: the runs now start `python -m t2v.bench.worker`)
    parser.add_argument("--worker", choices=("stock", "t2v"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--memory", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=FULL_SIZE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from t2v.bench import worker

        worker.run(args.worker, args.model, Path(args.out), size=args.size, dtype=args.dtype, memory=args.memory)
        return

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    runs = args.runs or (1 if args.small else 2)
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmpdir:
        tmp = Path(tmpdir)
        if args.model:
            model = Path(args.model).expanduser().resolve()
        elif args.small:
            model = cpu.make_small_model(tmp / "tiny-model")
        else:
            import fullsize

            if not fullsize.is_built(fullsize.DEFAULT_DIR):
                log(f"building the full-size model at {fullsize.DEFAULT_DIR} (once; a few minutes)")
            model = fullsize.build(fullsize.DEFAULT_DIR)
        log(f"model: {model}")
        size = SMALL_SIZE if args.small else FULL_SIZE
        log(f"request: {PROMPT!r}, {size}x{size}, 8 frames, 2 DDIM steps, guidance 9, seed 0, MP4")
        try:
            result = cpu.compare(model, tmp, runs=runs, size=size, low=args.low, bf16=args.bf16, auto=args.auto, fixed_mmap=args.fixed_mmap, max_load=args.max_load,
                                 max_wait=0 if args.small else args.max_wait, max_others=args.max_others,
                                 retries=args.retries, log=log)
        except cpu.BenchRunFailed as e:
            raise SystemExit(f"{e}\n{e.stderr}") from None
        summary, results = result["summary"], result["runs"]
        log("")
        log(report.table(summary))
        log("\n" + "\n".join(report.verdict(summary)))
        for r in results:
            if "frame_diff_vs_fp32" in r:
                fd = r["frame_diff_vs_fp32"]
                log(f"{r['tag']} vs fp32 t2v frames: max {fd['max']}, mean {fd['mean']:.3f} (of 255); "
                    f"end to end {report.fmt_s(r['times']['total'])}, peak RSS {r['rss_peak'] / report.MiB:,.0f} MiB")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str))
        log("\nper run:\n" + report.runs_table(results))
        log("\nmemory planner:\n" + report.planner_table(results))


if __name__ == "__main__":
    main()
