"""A job that switches LoRA adapters against one that keeps the adapters of the job before, in one process on one
loaded t2v-shapes model (what a server's worker does), interleaved; medians of the job's wall time.

Two random rank-8 adapters (t2v's PEFT layout, on the UNet's attention) are made first. The jobs cycle
base, A, A, B, A, ...: "same" jobs ask for the adapters the previous job had; "switch" jobs for others (the
model switches them: loads nothing the first time's load did not, sets strengths, activates); "base" jobs ask for none.

    .venv/bin/python benchmarks/bench_adapters.py [--repeats 5] [--steps 25]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path


def make_adapter(model: Path, out: Path, seed: int) -> Path:
    import torch
    from diffusers import UNet3DConditionModel

    from t2v.models.lora import add_lora, save_lora

    unet = UNet3DConditionModel.from_pretrained(model, subfolder="unet")
    torch.manual_seed(seed)
    config = add_lora(unet, rank=8)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return save_lora(unet, config, out, {"base": str(model), "rank": 8})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()

    import t2v
    from t2v.families import get_family
    from t2v.models.loader import model_cache
    from t2v.models.source import resolve_source
    from t2v.settings import get_settings

    folder = resolve_source("t2v-shapes", get_settings(), families=get_family).path
    tmp = Path(tempfile.mkdtemp())
    a, b = make_adapter(folder, tmp / "a", 1), make_adapter(folder, tmp / "b", 2)

    def job(loras):
        t0 = time.perf_counter()
        t2v.generate("a red circle moving right", model="t2v-shapes", seed=1, loras=loras, progress=False,
                      num_inference_steps=args.steps)
        return time.perf_counter() - t0

    job([])  # load the model (not timed)
    job([str(a)])  # load adapter A once (not timed)
    job([str(b)])  # and B
    times: dict[str, list[float]] = {"base": [], "same": [], "switch": []}
    for _ in range(args.repeats):
        times["base"].append(job([]))
        job([str(a)])
        times["same"].append(job([str(a)]))
        times["switch"].append(job([str(b)]))
        times["switch"].append(job([str(a)]))
    (entry,) = model_cache().entries.values()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, t2v-shapes, {args.steps} steps, "
          f"{args.repeats} repeats; adapters loaded in the model: {len(entry.host.names())}, switches: {entry.host.switches}")
    for k, v in med.items():
        print(f"{k:7s} median {v:.3f} s  (n={len(times[k])})")
    print(f"switch / same: {med['switch'] / med['same']:.3f}x   same / base: {med['same'] / med['base']:.3f}x")


if __name__ == "__main__":
    main()
