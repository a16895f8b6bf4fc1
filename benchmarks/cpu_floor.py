"""The compute floor of the CPU benchmark's request (docs/benchmarks.md, "CPU: full-size ModelScope"): how fast
any fp32 (or, with ``--dtype bf16``, any bf16) implementation could possibly run it on this machine.

It counts the FLOPs of the work the request fixes (one UNet3D step with classifier-free guidance, the VAE
decode of every frame, the text encoder for the prompt and the negative prompt) with
``torch.utils.flop_counter.FlopCounterMode`` on meta tensors (the full-size architectures of
``benchmarks/fullsize.py``, no weights needed), measures this CPU's throughput in the dtype on a large matmul
and large 3x3 convolutions (median of 5, all cores), and prints the time those FLOPs take at that throughput:
the floor for the end-to-end time at the same settings, and the speed-up over a measured stock time that the
floor allows.

    .venv/bin/python benchmarks/cpu_floor.py [--stock-s 150.19] [--json out.json]
    .venv/bin/python benchmarks/cpu_floor.py --dtype bf16 --target 2.5 --stock-s 95.3 --load-s 2.5
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
sys.path.insert(0, str(ROOT / "benchmarks"))

SIZE, FRAMES, STEPS, TOKENS = 256, 8, 2, 77  # the CPU benchmark's request


def flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def count() -> dict[str, int]:
    """FLOPs of one guided UNet step, the whole decode and both text encodings, on meta tensors."""
    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from fullsize import TEXT_CONFIG, VAE_CONFIG

    latent = SIZE // 8
    with torch.device("meta"):
        unet, vae = UNet3DConditionModel(), AutoencoderKL(**VAE_CONFIG)
        text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
        x = torch.empty(2, 4, FRAMES, latent, latent)  # uncond + cond in one batch, as stock and t2v run it
        enc = torch.empty(2, TOKENS, TEXT_CONFIG["hidden_size"])
        z = torch.empty(FRAMES, 4, latent, latent)
        ids = torch.zeros(1, TOKENS, dtype=torch.long)
        with torch.inference_mode():
            return {"unet_step": flops(lambda: unet(x, torch.tensor(500), encoder_hidden_states=enc)),
                    "vae_decode": flops(lambda: vae.decode(z)),
                    "text_encode": 2 * flops(lambda: text(ids))}


def throughput(runs: int = 5, dtype: str = "fp32") -> dict[str, float]:
    """This CPU's GFLOP/s in ``dtype`` on a 4096^3 matmul, a 512->512 3x3 convolution at 64x64 and a 320->320 one
    at 32x32 over 16 images (the UNet's first level) (median of ``runs``)."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]

    def rate(fn, work: float) -> float:
        fn()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return work / statistics.median(times) / 1e9

    a, b = torch.randn(4096, 4096, dtype=dt), torch.randn(4096, 4096, dtype=dt)
    conv, x = torch.nn.Conv2d(512, 512, 3, padding=1).eval().to(dt), torch.randn(2, 512, 64, 64, dtype=dt)
    conv2, x2 = torch.nn.Conv2d(320, 320, 3, padding=1).eval().to(dt), torch.randn(16, 320, 32, 32, dtype=dt)
    with torch.inference_mode():
        return {"matmul_gflops": rate(lambda: a @ b, 2 * 4096**3),
                "conv_gflops": rate(lambda: conv(x), 2 * 2 * 512 * 512 * 9 * 64 * 64),
                "conv320_gflops": rate(lambda: conv2(x2), 2 * 16 * 320 * 320 * 9 * 32 * 32)}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock-s", type=float, default=150.19,
                        help="stock diffusers' end-to-end seconds for the request (docs/benchmarks.md's median)")
    parser.add_argument("--load-s", type=float, default=5.83, help="seconds to load the weights (stock's median)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="the dtype whose throughput bounds it")
    parser.add_argument("--target", type=float, default=1.3, help="the speed-up whose required efficiency to print")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    work = count()
    total = work["unet_step"] * STEPS + work["vae_decode"] + work["text_encode"]
    rates = throughput(dtype=args.dtype)
    best = max(rates.values())
    floor = total / (best * 1e9) + args.load_s
    need = args.stock_s / args.target - args.load_s
    out = {"threads": torch.get_num_threads(), "dtype": args.dtype, "tflop": {k: v / 1e12 for k, v in work.items()},
           "tflop_total": total / 1e12, **rates, "floor_s": floor, "stock_s": args.stock_s, "load_s": args.load_s,
           "max_speedup": args.stock_s / floor, "target": args.target,
           "efficiency_needed_for_target": (total / (best * 1e9)) / need if need > 0 else float("inf")}
    print(f"{torch.get_num_threads()} threads; work at {SIZE}x{SIZE}, {FRAMES} frames, {STEPS} steps: "
          f"UNet step {work['unet_step'] / 1e12:.2f} TFLOP, decode {work['vae_decode'] / 1e12:.2f} TFLOP, "
          f"text {work['text_encode'] / 1e12:.3f} TFLOP; total {total / 1e12:.2f} TFLOP")
    print(f"{args.dtype} throughput: matmul {rates['matmul_gflops']:.0f} GFLOP/s, conv {rates['conv_gflops']:.0f} GFLOP/s, "
          f"conv 320ch {rates['conv320_gflops']:.0f} GFLOP/s")
    print(f"floor (all the FLOPs at the best throughput, plus {args.load_s:g} s of loading): {floor:.1f} s; "
          f"stock {args.stock_s:g} s -> at most {out['max_speedup']:.2f}x")
    print(f"{args.target:g}x ({args.stock_s / args.target:.1f} s) needs {100 * out['efficiency_needed_for_target']:.0f}% "
          f"of that throughput over the whole run")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
