"""GPU: full-size random-weight architectures, stock diffusers vs t2v, against the FLOP limit of the GPU.

For each model it builds the full-size architecture with random weights (configs only, no download):

- ``modelscope``: ModelScope 1.7B (``benchmarks/fullsize.py``: the 1.41 B UNet3D, SD VAE, CLIP ViT-H-sized
  text encoder), fp16, 256x256, 16 frames, 25 DDIM steps, guidance 9;
- ``wan``: Wan 2.1 T2V 1.3B (30 layers, 12 heads x 128, the real ``AutoencoderKLWan``), bf16, 480x832,
  81 frames, **10** steps (the real default is 50), guidance 5;
- ``ltx``: LTX-Video 2B 0.9.1 (28 layers, the timestep-conditioned VAE), bf16, 512x704, 97 frames,
  **10** steps (the real default is 50), guidance 3.

The text encoders of Wan and LTX are one layer of the real width (UMT5-XXL / T5-XXL: 4096 wide), so their
denoising and decoding cost is the real model's and the text encoding is not (it is one pass either way).
Each model runs in a fresh process (``--only NAME``): the stock pipeline (``from_pretrained(dir,
torch_dtype=...)``, ``.to("cuda")``, the family's call with ``generator=torch.Generator("cpu").manual_seed(0)``),
then t2v at the same settings (``memory="speed"``, same dtype), then t2v's other plans: ``best`` (the best
attention kernel installed, ``compile=True``) and ``cache`` (a step cache: ``deepcache`` for the UNet,
``fbc`` for the DiTs; frames then differ by design), and ``turbo`` (the ``best`` options at 4 steps without
guidance, what a few-step distill runs: the time a distilled model would take, not its frames). Every timed run follows an untimed 1-step warm-up at the
same shape (2 steps; it also compiles). Reported per run: the call's time (load excluded), t2v's denoise and decode
times, peak GPU memory (``torch.cuda.max_memory_allocated``) and the ratio to the FLOP floor.

FLOP floor: the FLOPs of one denoising step (every guidance pass) counted by ``FlopCounterMode`` on the meta
device (``t2v.planner.memory.predict``, the planner's dry run) x steps, divided by the GPU's peak dense bf16/fp16
FLOP/s (a table of datasheet figures; else a large measured matmul; ``--peak-tflops`` to give it). The ratio
``time / floor`` is how far from the speed of light the denoising loop runs (1.0 would be every tensor core busy).

    python benchmarks/gpu.py --json gpu.json                  # on a CUDA machine: all three (~15-25 min on an H100)
    python benchmarks/gpu.py --only wan --plans same,best     # one model, some plans
    python benchmarks/gpu.py --dry                            # CPU plumbing check: tiny models, 2 steps, fp32
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "a panda surfing on a big ocean wave at sunset"
MODELS = ("modelscope", "wan", "ltx")
# name -> request at full size (the settings; Wan and LTX with fewer steps than their defaults).
FULL = {
    "modelscope": dict(dtype="fp16", width=256, height=256, num_frames=16, num_inference_steps=25, guidance_scale=9.0,
                       scheduler="ddim", fps=8.0),
    "wan": dict(dtype="bf16", width=832, height=480, num_frames=81, num_inference_steps=10, guidance_scale=5.0,
                scheduler="model", fps=16.0),
    "ltx": dict(dtype="bf16", width=704, height=512, num_frames=97, num_inference_steps=10, guidance_scale=3.0,
                scheduler="model", fps=25.0),
}
DRY = {  # --dry: the tiny models' own small shapes, 2 steps, fp32 on the CPU
    "modelscope": dict(dtype="fp32", width=64, height=64, num_frames=8, num_inference_steps=2, guidance_scale=9.0,
                       scheduler="ddim", fps=8.0),
    "wan": dict(dtype="fp32", width=64, height=32, num_frames=9, num_inference_steps=2, guidance_scale=5.0,
                scheduler="model", fps=16.0),
    "ltx": dict(dtype="fp32", width=96, height=64, num_frames=9, num_inference_steps=2, guidance_scale=3.0,
                scheduler="model", fps=25.0),
}
CACHE_PLAN = {"modelscope": "deepcache", "wan": "fbc", "ltx": "fbc"}
# Peak dense (no sparsity) bf16/fp16 tensor-core TFLOP/s from the datasheets, matched in order on the name.
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0))
TURBO_STEPS = 4  # the turbo plan: steps of a few-step distill (lightx2v / CausVid / FastWan LoRAs run 3-4), no CFG
# The attention kernels (t2v.sampling.kernels), and the order `best` tries them in: the packages' kernels, then
# SDPA's fastest back-ends on Ampere and later (cuDNN takes the masked families too); the first accepted wins.
KERNELS = ("sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math", "flex", "flash", "sage")
BEST_KERNELS = ("sage", "flash", "sdpa-cudnn", "sdpa-flash")
WARMUP_STEPS = 2  # untimed, at the same shape (LTX's flow-match scheduler cannot step a 1-step schedule)
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# -- building the models -----------------------------------------------------------------------------------

def build_model(name: str, root: Path, *, dry: bool, device: str) -> Path:
    """The model folder for ``name`` under ``root`` (built once: a marker file says it is complete)."""
    from t2v.families import make_tiny_model

    folder = root / (f"tiny-{name}" if dry else f"full-{name}")
    marker = folder / ".gpu-bench-complete"
    if marker.is_file():
        return folder
    if name == "modelscope" and not dry:
        import fullsize

        fullsize.build(folder)  # fp32 safetensors, loaded here in fp16
    else:
        make_tiny_model(name, folder, fp16_variant=False)
        if not dry:
            full_size_dit(name, folder, device)
    marker.write_text("ok\n")
    return folder


def full_size_dit(name: str, folder: Path, device: str) -> None:
    """Replace the tiny folder's transformer, VAE and text encoder with full-size random-weight ones in bf16
    (Wan 2.1 1.3B / LTX-Video 2B 0.9.1 configs, as tests/families' GPU tests build them); the tokenizer
    (``ByT5Tokenizer``), scheduler and ``model_index.json`` stay the tiny folder's, which are the real layout."""
    import shutil

    import torch
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer.from_pretrained(folder / "tokenizer")
    text = dict(vocab_size=len(tok), d_model=4096, d_kv=64, d_ff=10240, num_heads=64, num_layers=1,
                feed_forward_proj="gated-gelu", pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                decoder_start_token_id=0)
    with torch.device(device):  # random init on the GPU: seconds
        torch.manual_seed(0)
        if name == "wan":
            from diffusers import AutoencoderKLWan, WanTransformer3DModel
            from transformers import UMT5Config, UMT5EncoderModel

            modules = {
                "transformer": WanTransformer3DModel(num_attention_heads=12, attention_head_dim=128, in_channels=16,
                                                     out_channels=16, text_dim=4096, ffn_dim=8960, num_layers=30,
                                                     cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6),
                "vae": AutoencoderKLWan(),
                "text_encoder": UMT5EncoderModel(UMT5Config(**text)),
            }
        else:
            from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
            from transformers import T5Config, T5EncoderModel

            modules = {
                "transformer": LTXVideoTransformer3DModel(),  # 28 layers, 32 heads x 64
                "vae": AutoencoderKLLTXVideo(
                    decoder_block_out_channels=(256, 512, 1024), decoder_layers_per_block=(5, 6, 7, 8),
                    decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(True, True, True, False),
                    upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True),
                "text_encoder": T5EncoderModel(T5Config(**text)),
            }
            shutil.rmtree(folder / "scheduler")
            FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                            base_image_seq_len=1024, max_image_seq_len=4096,
                                            shift_terminal=0.1).save_pretrained(folder / "scheduler")
    for sub, module in modules.items():
        shutil.rmtree(folder / sub)
        module.to(torch.bfloat16).save_pretrained(folder / sub, safe_serialization=True)
        del module
    modules.clear()
    gc.collect()


# -- one model: stock, then t2v's plans ------------------------------------------------------------------

def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def resolved_request(folder: Path, settings: dict, device: str, **plan):
    from t2v import GenerationRequest
    from t2v.runner.resolve import resolve
    from t2v.settings import get_settings

    req = GenerationRequest(prompt=PROMPT, model=str(folder), negative_prompt="", seed=0, formats=(), device=device,
                            **settings, **plan)
    return resolve(req, get_settings())


def run_stock(name: str, folder: Path, req, device: str) -> tuple[dict, object]:
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline

    from t2v.bench.spec import stock_extra
    from t2v.families import family_of_folder, get_family
    from t2v.families.base import read_index
    from t2v.models.source import model_defaults

    index, (_, defaults) = read_index(folder), model_defaults(str(folder), get_family)
    fields = {k: getattr(req, k) for k in ("fps", "guidance_scale_2", "decode_timestep", "decode_noise_scale",
                                           "num_inference_steps")}
    extra = stock_extra(family_of_folder(folder).name, index, fields, defaults)
    t0 = time.perf_counter()
    pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=getattr(torch, TORCH_DTYPES[req.dtype])).to(device)
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0

    def call(steps: int):
        torch.manual_seed(0)
        return pipe(prompt=req.prompt, negative_prompt=req.negative_prompt, num_frames=req.num_frames, height=req.height,
                    width=req.width, num_inference_steps=steps, guidance_scale=req.guidance_scale, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(req.seed), **extra).frames[0]

    call(WARMUP_STEPS)  # warm-up
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    frames = call(req.num_inference_steps)
    sync(device)
    run_s = time.perf_counter() - t0
    out = {"side": "stock", "plan": "stock", "load_s": round(load_s, 2), "run_s": round(run_s, 3),
           "peak_gib": peak_gib(device), "stock_extra": extra}
    pipe = None  # frees the weights (the closure above holds the name, not the pipeline)
    gc.collect()
    reset_peak(device)
    return out, np.round(np.asarray(frames) * 255).astype(np.uint8)


def accepted(folder: Path, settings: dict, device: str, **plan) -> bool:
    """Whether this machine, install and family take ``plan`` (checked as a request is)."""
    from t2v.errors import InvalidRequest

    try:
        resolved_request(folder, settings, device, **plan)
        return True
    except InvalidRequest:
        return False


def best_plan(name: str, folder: Path, settings: dict, device: str, *, fp8: bool = False) -> dict:
    """``compile`` and the fastest attention kernel this machine and family take; with ``fp8``, the block
    layers' products in fp8 too (``weights="fp8-fast"``) where the GPU has fp8."""
    plan = {"memory": "speed", "compile": device == "cuda"}
    kernel = next((k for k in BEST_KERNELS if accepted(folder, settings, device, attention=k, **plan)), None)
    if kernel:
        plan["attention"] = kernel
    if fp8 and accepted(folder, settings, device, weights="fp8-fast", **plan):
        plan["weights"] = "fp8-fast"
    return plan


def run_t2v(req, device: str, tag: str) -> tuple[dict, object]:
    from t2v import generate

    t0 = time.perf_counter()
    generate(req.model_copy(update={"num_inference_steps": WARMUP_STEPS}))  # warm-up (and compile), same shape
    print(f"{tag}: load and warm-up ({WARMUP_STEPS} steps, compile included) took {time.perf_counter() - t0:.0f} s",
          flush=True)
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    result = generate(req)
    sync(device)
    wall = time.perf_counter() - t0
    t = result.record["timings"]
    return {"side": "t2v", "plan": tag, "options": {k: getattr(req, k) for k in (
                "dtype", "memory", "cache", "attention", "compile", "weights", "num_inference_steps", "guidance_scale")},
            "memory_plan": result.record["memory_plan"]["plan"], "load_s": round(t["load_s"], 2),
            "run_s": round(wall - t["load_s"], 3), "denoise_s": round(t["denoise_s"], 3), "decode_s": round(t["decode_s"], 3),
            "peak_gib": peak_gib(device), "timings": {k: round(v, 3) for k, v in t.items() if isinstance(v, float)}}, result.frames


def progress(name: str, run: dict) -> None:
    """One finished run's figures, printed at once (a run cut short by a time limit keeps those already made)."""
    keep = ("run_s", "denoise_s", "decode_s", "peak_gib", "max_diff_vs_stock", "mean_diff_vs_stock", "psnr_vs_stock_db")
    print(f"{name}: {run['plan']}: " + json.dumps({k: run[k] for k in keep if k in run}), flush=True)


def one_model(name: str, root: Path, *, dry: bool, plans: list[str], peak_flops: float) -> dict:
    import numpy as np

    from t2v.families import family_of_folder
    from t2v.planner.memory import predict

    device = "cpu" if dry else "cuda"
    settings = dict((DRY if dry else FULL)[name])
    t0 = time.perf_counter()
    folder = build_model(name, root, dry=dry, device=device)
    print(f"{name}: model folder ready in {time.perf_counter() - t0:.0f} s", flush=True)
    req = resolved_request(folder, settings, device, memory="speed")
    family = family_of_folder(folder)
    pred = predict(folder, req, family=family, plan="speed", device=device, dtype=req.dtype, measure_speed=False)
    passes = family.guidance_passes(req)
    floor_s = pred.flops_per_step * req.num_inference_steps / peak_flops
    out = {"model": name, "folder": str(folder), "request": {k: getattr(req, k) for k in (
        "width", "height", "num_frames", "num_inference_steps", "guidance_scale", "scheduler", "dtype")},
        "flops_per_step": pred.flops_per_step, "guidance_passes": passes, "decode_flops": pred.decode_flops,
        "peak_flops": peak_flops, "denoise_floor_s": floor_s, "runs": []}
    stock, stock_frames = run_stock(name, folder, req, device)
    out["runs"].append(stock)
    progress(name, stock)
    for tag in [k for t in plans for k in (KERNELS if t == "kernels" else (t,))]:
        if tag == "same":
            plan_req = req
        elif tag in KERNELS:  # the kernel alone, eager: its own speed and pixel difference
            if not accepted(folder, settings, device, memory="speed", attention=tag):
                print(f"{name}: plan {tag} skipped: this machine, install or family does not take it", flush=True)
                continue
            plan_req = resolved_request(folder, settings, device, memory="speed", attention=tag)
        elif tag in ("best", "fp8"):  # fp8: best with the block layers computed in fp8
            plan_req = resolved_request(folder, settings, device,
                                        **best_plan(name, folder, settings, device, fp8=tag == "fp8"))
        elif tag == "turbo":  # a few-step run without guidance (what a distilled LoRA runs), the fastest plan
            fast = {**settings, "num_inference_steps": TURBO_STEPS, "guidance_scale": 1.0}
            plan_req = resolved_request(folder, fast, device, **best_plan(name, folder, fast, device, fp8=True))
        elif tag == "cache":
            plan_req = resolved_request(folder, settings, device, memory="speed", cache=CACHE_PLAN[name])
        else:
            raise SystemExit(f"unknown plan {tag!r}; choose from same, best, fp8, turbo, cache, kernels or a kernel "
                             f"({', '.join(KERNELS)})")
        try:
            run, frames = run_t2v(plan_req, device, tag)
        except Exception as e:  # one plan failing (a kernel, the compiler) must not lose the model's other figures
            out.setdefault("failed", []).append({"plan": tag, "error": f"{type(e).__name__}: {e}"[:500]})
            print(f"{name}: t2v plan {tag} failed: {type(e).__name__}: {e}", flush=True)
            continue
        if tag != "turbo":  # other settings: other frames by design
            diff = np.abs(frames.astype(int) - stock_frames.astype(int))
            run["max_diff_vs_stock"] = int(diff.max())
            run["mean_diff_vs_stock"] = round(float(diff.mean()), 3)
            mse = float((diff.astype(np.float64) ** 2).mean())
            run["psnr_vs_stock_db"] = round(10 * np.log10(255 ** 2 / mse), 1) if mse else None
        out["runs"].append(run)
        progress(name, run)
    for run in out["runs"]:
        run["speedup_vs_stock"] = round(stock["run_s"] / run["run_s"], 3)
        if "denoise_s" in run:
            run["denoise_vs_floor"] = round(run["denoise_s"] / floor_s, 2)
        run["run_vs_floor"] = round(run["run_s"] / floor_s, 2)
    return out


# -- the machine and the report ------------------------------------------------------------------------

def peak_flops_of_device(dry: bool, given: float | None) -> tuple[float, str]:
    """(peak FLOP/s, where the figure comes from)."""
    import torch

    if given:
        return given * 1e12, "given (--peak-tflops)"
    if not dry and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for key, tflops in PEAK_TFLOPS:
            if key in name:
                return tflops * 1e12, f"datasheet, {key} dense bf16"
    return measured_matmul_flops("cpu" if dry else "cuda"), "measured (large matmul)"


def measured_matmul_flops(device: str) -> float:
    import torch

    n, reps = (1024, 3) if device == "cpu" else (8192, 20)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def table(results: list[dict]) -> str:
    rows = ["| model | settings | run | time (load excluded) | vs stock | denoise | decode | denoise / floor | peak GPU "
            "memory | max / mean diff vs stock, PSNR |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in results:
        r = m["request"]
        floor_s = m["denoise_floor_s"]
        floor = f"{floor_s:.2f} s" if floor_s >= 0.1 else f"{floor_s * 1000:.2f} ms"
        shape = f"{r['width']}x{r['height']}x{r['num_frames']}, {r['num_inference_steps']} steps, {r['dtype']}; floor {floor}"
        for run in m["runs"]:
            what = "stock diffusers" if run["side"] == "stock" else f"t2v {run['plan']} ({plan_words(run['options'], run['plan'])})"
            mem = f"{run['peak_gib']:.1f} GiB" if run["peak_gib"] is not None else "n/a"
            vs_floor = f"{run['denoise_vs_floor']:.2f}x" if "denoise_vs_floor" in run else "—"
            stages = " | ".join(f"{run[k]:.2f} s" if k in run else "—" for k in ("denoise_s", "decode_s"))
            diff = "—"
            if "max_diff_vs_stock" in run:
                psnr = run["psnr_vs_stock_db"]
                diff = (f"{run['max_diff_vs_stock']} / {run['mean_diff_vs_stock']:.2f}, "
                        + (f"{psnr:.1f} dB" if psnr is not None else "equal"))
            rows.append(f"| {m['model']} | {shape} | {what} | {run['run_s']:.2f} s | {run['speedup_vs_stock']:.2f}x "
                        f"| {stages} | {vs_floor} | {mem} | {diff} |")
    return "\n".join(rows)


def plan_words(options: dict, plan: str = "") -> str:
    words = [options["dtype"], f"memory {options['memory']}"]
    words += [f"cache {options['cache']}"] if options.get("cache") else []
    words += [f"attention {options['attention']}"] if options.get("attention") not in (None, "auto") else []
    words += ["compiled"] if options.get("compile") else []
    words += [f"weights {options['weights']}"] if options.get("weights") not in (None, "auto") else []
    words += [f"{options['num_inference_steps']} steps, guidance {options['guidance_scale']:g}"] if "turbo" in plan else []
    return ", ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--only", help=argparse.SUPPRESS)  # internal: one model in this process
    parser.add_argument("--plans", default="same,best,cache", help=(
        "t2v plans to run: same, best, fp8, turbo, cache; a kernel alone (sage, flex, sdpa-cudnn, ...), or kernels (each "
        "kernel the model and machine take)"))
    parser.add_argument("--dry", action="store_true", help="tiny models on the CPU, 2 steps (checks the plumbing)")
    parser.add_argument("--workdir", default=None, help="where the model folders go (default: a temporary folder)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense bf16 TFLOP/s (default: table or measured)")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    plans = [p for p in args.plans.split(",") if p]
    if args.only:  # the child: one model, its figures to --out
        peak, _ = peak_flops_of_device(args.dry, args.peak_tflops)
        result = one_model(args.only, Path(args.workdir), dry=args.dry, plans=plans, peak_flops=peak)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
        return
    import torch

    if not args.dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; run with --dry to check the plumbing on the CPU")
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise SystemExit(f"unknown model {bad[0]!r}; choose from {', '.join(MODELS)}")
    peak, source = peak_flops_of_device(args.dry, args.peak_tflops)
    gpu = "CPU (--dry)" if args.dry else torch.cuda.get_device_name(0)
    print(f"device: {gpu}; peak {peak / 1e12:.1f} TFLOP/s ({source})", flush=True)
    with tempfile.TemporaryDirectory(prefix="t2v-gpu-bench-") as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        results = []
        for name in models:
            part = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, __file__, "--only", name, "--workdir", str(root), "--out", str(part),
                   "--plans", ",".join(plans), "--peak-tflops", str(peak / 1e12)] + (["--dry"] if args.dry else [])
            t0 = time.perf_counter()
            proc = subprocess.run(cmd)
            if proc.returncode != 0:
                print(f"{name}: failed (exit {proc.returncode}); going on", flush=True)
                continue
            results.append(json.loads(part.read_text()))
            print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    import t2v.bench.cpu as bench_cpu

    report = {"device": gpu, "peak_flops": peak, "peak_source": source, "machine": bench_cpu.machine(),
              "dry": args.dry, "models": results}
    print("\n" + table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
