"""GPU memory caps: a full-size model run on a smaller card, emulated, against the same model fully resident.

For each model (the full-size random-weight folders of ``benchmarks/gpu.py``, same settings), in one process:

1. ``resident``: t2v with ``memory="speed"`` on the whole GPU (after an untimed 2-step warm-up);
2. ``capped``: the process's GPU memory capped at ``--cap-gib`` (``torch.cuda.set_per_process_memory_fraction``:
   an allocation past it fails as on a card of that size) and ``T2V_MEMORY_BUDGET_GB`` set to the same figure,
   ``memory="auto"``: the planner picks the plan (and the weight storage) it predicts to fit, the run must not
   run out of memory, and the figures say what it cost.

Reported per run: the plan the planner picked, its predicted peak, the measured peak
(``torch.cuda.max_memory_allocated``), the time (load excluded), the time against the resident run and the
largest pixel difference from it.

    python benchmarks/gpu_capped.py --models wan --cap-gib 6 --json capped.json   # on a CUDA machine
    python benchmarks/gpu_capped.py --dry                                          # CPU plumbing: tiny Wan
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu  # noqa: E402  (benchmarks/gpu.py: the models, the settings and the timing helpers)


def run(req, device: str) -> tuple[dict, object]:
    from t2v import generate

    generate(req.model_copy(update={"num_inference_steps": gpu.WARMUP_STEPS}))
    gpu.reset_peak(device)
    gpu.sync(device)
    t0 = time.perf_counter()
    result = generate(req)
    gpu.sync(device)
    wall = time.perf_counter() - t0
    t, plan = result.record["timings"], result.record["memory_plan"]
    return {"plan": plan.get("plan"), "weights": result.record.get("weights"),
            "text_encoder_weights": result.record.get("text_encoder_weights"),
            "predicted_peak_gib": round(plan["predicted_peak_mb"] / 1024, 2) if plan.get("predicted_peak_mb") else None,
            "peak_gib": gpu.peak_gib(device), "run_s": round(wall - t["load_s"], 3),
            "denoise_s": round(t["denoise_s"], 3), "decode_s": round(t["decode_s"], 3)}, result.frames


def one_model(name: str, root: Path, *, dry: bool, cap_gib: float) -> dict:
    import numpy as np
    import torch

    device = "cpu" if dry else "cuda"
    settings = dict((gpu.DRY if dry else gpu.FULL)[name])
    folder = gpu.build_model(name, root, dry=dry, device=device)
    resident, frames = run(gpu.resolved_request(folder, settings, device, memory="speed"), device)
    os.environ["T2V_MEMORY_BUDGET_GB"] = str(cap_gib)
    if device == "cuda":
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(cap_gib * 2**30 / total)
    try:
        capped, capped_frames = run(gpu.resolved_request(folder, settings, device, memory="auto"), device)
        capped["max_diff_vs_resident"] = int(np.abs(frames.astype(int) - capped_frames.astype(int)).max())
        capped["time_vs_resident"] = round(capped["run_s"] / resident["run_s"], 2)
    except Exception as e:  # an out-of-memory error is a result too
        capped = {"error": f"{type(e).__name__}: {e}"[:500]}
    finally:
        os.environ.pop("T2V_MEMORY_BUDGET_GB", None)
        if device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
    return {"model": name, "cap_gib": cap_gib, "request": settings, "resident": resident, "capped": capped}


def table(results: list[dict]) -> str:
    rows = ["| model | settings | cap | run | plan (weights) | predicted peak | measured peak | time | vs resident | "
            "max diff |", "|---|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for m in results:
        r = m["request"]
        shape = f"{r['width']}x{r['height']}x{r['num_frames']}, {r['num_inference_steps']} steps, {r['dtype']}"
        for tag in ("resident", "capped"):
            x = m[tag]
            if "error" in x:
                rows.append(f"| {m['model']} | {shape} | {m['cap_gib']:g} GiB | {tag} | failed: {x['error'][:120]} "
                            f"| | | | | |")
                continue
            fmt = (lambda v: f"{v:.2f} GiB" if v is not None else "n/a")
            rows.append(f"| {m['model']} | {shape} | {m['cap_gib']:g} GiB | {tag} | {x['plan']} ({x['weights']}, text "
                        f"{x['text_encoder_weights']}) | {fmt(x['predicted_peak_gib'])} | {fmt(x['peak_gib'])} | "
                        f"{x['run_s']:.2f} s | {x.get('time_vs_resident', 1.0):.2f}x | "
                        f"{x.get('max_diff_vs_resident', 0)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="wan", help="comma-separated: " + ", ".join(gpu.MODELS))
    parser.add_argument("--cap-gib", type=float, default=6.0, help="the emulated card's memory (GiB)")
    parser.add_argument("--dry", action="store_true", help="tiny models on the CPU (checks the plumbing)")
    parser.add_argument("--workdir", default="/tmp/gpu-models", help="where the model folders are (or go)")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    results = [one_model(name, Path(args.workdir), dry=args.dry, cap_gib=args.cap_gib)
               for name in args.models.split(",")]
    print(table(results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"dry": args.dry, "models": results}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
