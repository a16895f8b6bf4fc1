"""CPU: one text-to-video request through stock diffusers and through t2v, per stage, with peak memory.

Both sides make the same clip (256x256, 8 frames, 2 DDIM steps, guidance 9, seed 0, MP4) from the same model
folder. Each run is a fresh subprocess, so its peak RSS (``ru_maxrss``) is that run's alone; runs alternate
stock, t2v, stock, t2v, ... and medians are reported.

- stock: what a user would otherwise run: ``DiffusionPipeline.from_pretrained(dir)`` (fp32 on CPU),
  ``.to("cpu")``, ``pipe(prompt, num_inference_steps=2, num_frames=8, height=256, width=256,
  generator=torch.Generator("cpu").manual_seed(0))``, ``export_to_video(frames)``; its stages are timed
  with forward hooks on the text encoder and the UNet and a wrapper around ``vae.decode``.
- t2v: ``t2v.generate(GenerationRequest(...same request..., scheduler="ddim", formats=("mp4",)))``; stages
  from its record's ``timings``.

Both use the empty negative prompt (diffusers' default), so the two sides must produce the same frames;
the script checks that. The full-size model (1.41 B-parameter ModelScope UNet, SD VAE, CLIP ViT-H-sized
text encoder, random weights) is built once by ``benchmarks/fullsize.py``; ``--small`` runs the same
comparison on a tiny model built by ``t2v.models.tiny.make_tiny`` in a few seconds.

    .venv/bin/python benchmarks/bench_cpu.py --small                   # tiny model, seconds
    .venv/bin/python benchmarks/bench_cpu.py --runs 2 --low --json out.json   # full size
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "a panda surfing on a big ocean wave at sunset"
REQUEST = dict(num_frames=8, width=256, height=256, num_inference_steps=2, seed=0, guidance_scale=9.0)
# The tiny model's VAE scales by 4, not 8: at 256x256 its latents would be 64x64 (4096 tokens per frame in
# self-attention), slower than the point of --small. 64x64 gives it 16x16 latents.
SMALL_SIZE = 64
STAGES = ("load", "text_encode", "denoise", "decode", "encode", "other")
STAGE_LABELS = {
    "load": "load (from_pretrained / load_model)",
    "text_encode": "text encode (prompt + negative)",
    "denoise": "denoise, per step",
    "decode": "VAE decode (8 frames)",
    "encode": "encode MP4",
    "other": "other (planning, pipeline glue, post-processing)",
    "total": "**end to end** (load to file written)",
    "process": "process wall time (incl. Python + imports)",
}
MiB = 2**20


# --------------------------------------------------------------------------------------------- worker side


class RssSampler:
    """Samples this process's RSS every ``interval`` s, so each stage's peak can be read off afterwards."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._proc.memory_info().rss))
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), self._proc.memory_info().rss))

    def peak(self, start: float, end: float) -> int:
        inside = [r for t, r in self.samples if start <= t <= end]
        return max(inside) if inside else 0


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _frames_file(out: Path, frames) -> str:
    import numpy as np

    path = out.with_suffix(".frames.npy")
    np.save(path, frames)
    return str(path)


def worker_stock(model: str, out: Path, workdir: Path) -> dict:
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import export_to_video

    baseline = _maxrss_bytes()
    spans: dict[str, list[tuple[float, float]]] = {"text_encode": [], "unet": [], "decode": []}
    with RssSampler() as rss:
        t0 = time.perf_counter()
        pipe = DiffusionPipeline.from_pretrained(model)
        pipe = pipe.to("cpu")
        t_loaded = time.perf_counter()
        rss_after_load = rss._proc.memory_info().rss

        def timed(name, module):
            starts: list[float] = []
            module.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
            module.register_forward_hook(lambda *_: spans[name].append((starts.pop(), time.perf_counter())))

        timed("text_encode", pipe.text_encoder)
        timed("unet", pipe.unet)
        decode = pipe.vae.decode

        def timed_decode(*args, **kwargs):
            s = time.perf_counter()
            try:
                return decode(*args, **kwargs)
            finally:
                spans["decode"].append((s, time.perf_counter()))

        pipe.vae.decode = timed_decode
        t_call = time.perf_counter()
        frames = pipe(PROMPT, num_inference_steps=REQUEST["num_inference_steps"], num_frames=REQUEST["num_frames"],
                      height=REQUEST["height"], width=REQUEST["width"],
                      generator=torch.Generator("cpu").manual_seed(REQUEST["seed"])).frames[0]
        t_called = time.perf_counter()
        export_to_video(frames, str(workdir / "stock.mp4"), fps=8)
        t_end = time.perf_counter()

    te, unet, dec = spans["text_encode"], spans["unet"], spans["decode"]
    stage_spans = {
        "load": (t0, t_loaded),
        "text_encode": (te[0][0], te[-1][1]),
        # First UNet call to the start of VAE decode: every step's UNet call and scheduler step (as t2v counts it).
        "denoise": (unet[0][0], dec[0][0]),
        "decode": (dec[0][0], dec[-1][1]),
        "encode": (t_called, t_end),
    }
    times = {k: b - a for k, (a, b) in stage_spans.items()}
    total = t_end - t0
    times["other"] = total - sum(times.values())
    times["total"] = total
    return {
        "side": "stock",
        "times": times,
        "unet_calls": [b - a for a, b in unet],
        "steps": len(unet),
        "rss_peak": _maxrss_bytes(),
        "rss_baseline": baseline,
        "rss_after_load": rss_after_load,
        "rss_stage_peak": {k: rss.peak(a, b) for k, (a, b) in stage_spans.items()},
        "frames": _frames_file(out, np.round(np.asarray(frames) * 255).astype(np.uint8)),
        "torch_threads": torch.get_num_threads(),
    }


def worker_t2v(model: str, out: Path, workdir: Path, dtype: str, memory: str) -> dict:
    # The libraries generate() would import lazily, imported up front as on the stock side.
    import diffusers  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from t2v import GenerationRequest, generate
    from t2v.generation import resolve
    from t2v.models.memory import predict
    from t2v.settings import get_settings

    baseline = _maxrss_bytes()
    events: list[tuple[str, float]] = []
    request = GenerationRequest(prompt=PROMPT, model=model, negative_prompt="", scheduler="ddim", formats=("mp4",),
                                device="cpu", dtype=dtype, memory=memory, **REQUEST)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        result = generate(request, output=workdir / "t2v.mp4",
                          on_progress=lambda e: events.append((e.stage, time.perf_counter())))
        t_end = time.perf_counter()
    record = result.record
    timings = record["timings"]
    times = {
        "load": timings["load_s"],
        "text_encode": timings["encode_prompt_s"],
        "denoise": timings["denoise_s"],
        "decode": timings["decode_s"],
        "encode": timings["encode_s"],
    }
    total = timings["total_s"]
    times["other"] = total - sum(times.values())
    times["total"] = total
    first = {}
    for stage, t in events:
        first.setdefault(stage, t)
    order = ["load", "encode_prompt", "denoise", "decode", "export", "done"]
    bounds = {s: first.get(s) for s in order}
    stage_spans = {}
    for ours, theirs, nxt in (("load", "load", "encode_prompt"), ("text_encode", "encode_prompt", "denoise"),
                              ("denoise", "denoise", "decode"), ("decode", "decode", "export"), ("encode", "export", "done")):
        if bounds.get(theirs) and bounds.get(nxt):
            stage_spans[ours] = (bounds[theirs], bounds[nxt])
    # Prediction for the plan t2v used (and the others), same request, same process baseline as generate() had.
    resolved = resolve(request, get_settings())
    plan_used = record["memory_plan"]["plan"]
    predictions = {}
    for plan in (plan_used,):
        p = predict(resolved.model, resolved, plan=plan, device="cpu", dtype=record["dtype"], measure_speed=False)
        predictions[plan] = {"peak_bytes": p.peak_bytes, "weights_bytes": p.weights_bytes,
                             "activation_bytes": p.activation_bytes, "baseline_bytes": p.baseline_bytes}
    return {
        "side": "t2v",
        "dtype": record["dtype"],
        "memory": memory,
        "memory_plan": record["memory_plan"],
        "plan_used": plan_used,
        "predictions": predictions,
        "times": times,
        "steps": record["num_inference_steps"],
        "rss_peak": _maxrss_bytes(),
        "rss_baseline": baseline,
        "rss_stage_peak": {k: rss.peak(a, b) for k, (a, b) in stage_spans.items()},
        "frames": _frames_file(out, result.frames),
        "frames_sha256": record["frames_sha256"],
        "wall_check_s": t_end - t0,
        "torch_threads": torch.get_num_threads(),
    }


def worker_main(args) -> None:
    REQUEST["width"] = REQUEST["height"] = args.size
    out = Path(args.out)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{args.worker}-", dir=out.parent))
    os.environ.setdefault("T2V_HOME", str(workdir / "home"))
    if args.worker == "stock":
        res = worker_stock(args.model, out, workdir)
    else:
        res = worker_t2v(args.model, out, workdir, args.dtype, args.memory)
    res["mp4_bytes"] = sum(p.stat().st_size for p in workdir.glob("*.mp4"))
    out.write_text(json.dumps(res, indent=1))


# --------------------------------------------------------------------------------------------- parent side


def cpu_busy(seconds: float = 5.0) -> float:
    """Cores' worth of CPU in use by anything over ``seconds`` (0..cores)."""
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100 * (os.cpu_count() or 1)


def wait_for_quiet(max_load: float, max_wait_s: float, log) -> dict:
    """Wait (60 s at a time, up to ``max_wait_s``) while the 1-minute load is over ``max_load``.

    The load average lags: right after one of our own runs it is still ~2 with nothing running. So the
    machine also counts as quiet when a 5 s sample shows under 0.2 cores busy.
    """
    waited = 0.0
    while True:
        load = os.getloadavg()[0]
        busy = cpu_busy()
        if load <= max_load or busy < 0.2 or waited >= max_wait_s:
            return {"load1": round(load, 2), "busy_cores": round(busy, 2), "waited_s": waited}
        log(f"  load {load:.2f}, {busy:.2f} cores busy: waiting 60 s")
        time.sleep(60)
        waited += 60


def _busy_cpu_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_worker(side: str, model: Path, tmp: Path, tag: str, *, size: int, dtype: str = "fp32", memory: str = "auto") -> dict:
    out = tmp / f"{tag}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--model", str(model), "--out", str(out),
           "--dtype", dtype, "--memory", memory, "--size", str(size)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "T2V_HOME": str(tmp / "home")}
    busy0, kids0 = _busy_cpu_s(), _children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    # CPU time the rest of the machine used meanwhile (everything busy minus this run): contamination.
    others = max(0.0, (_busy_cpu_s() - busy0) - (_children_cpu_s() - kids0))
    if proc.returncode != 0:
        raise SystemExit(f"{side} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    res = json.loads(out.read_text())
    res["times"]["process"] = wall
    res["tag"] = tag
    res["others_cores"] = others / wall
    return res


def frame_diff(a_path: str, b_path: str) -> dict:
    import numpy as np

    a, b = np.load(a_path).astype(np.int16), np.load(b_path).astype(np.int16)
    d = np.abs(a - b)
    return {"max": int(d.max()), "mean": float(d.mean()), "identical": bool((d == 0).all()), "shape": list(a.shape)}


def median_times(runs: list[dict]) -> dict:
    keys = runs[0]["times"].keys()
    return {k: statistics.median(r["times"][k] for r in runs) for k in keys}


def summarize(results: list[dict]) -> dict:
    stock = [r for r in results if r["side"] == "stock"]
    t2v = [r for r in results if r["side"] == "t2v" and r["tag"].startswith("t2v-")]
    s, t = median_times(stock), median_times(t2v)
    steps = stock[0]["steps"]
    for m in (s, t):
        m["denoise"] /= steps  # per step
    return {
        "stock": s,
        "t2v": t,
        "stock_rss": statistics.median(r["rss_peak"] for r in stock),
        "t2v_rss": statistics.median(r["rss_peak"] for r in t2v),
        "speedup": s["total"] / t["total"],
        "rss_ratio": statistics.median(r["rss_peak"] for r in t2v) / statistics.median(r["rss_peak"] for r in stock),
        "n_stock": len(stock),
        "n_t2v": len(t2v),
    }


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x >= 1 else f"{x * 1000:.0f} ms"


def table(summary: dict) -> str:
    s, t = summary["stock"], summary["t2v"]
    rows = ["| Stage | stock diffusers (fp32) | t2v (fp32) | t2v / stock |", "|---|---:|---:|---:|"]
    for k in (*STAGES, "total", "process"):
        ratio = t[k] / s[k] if s[k] > 0.0005 else float("nan")
        label = STAGE_LABELS[k]
        rows.append(f"| {label} | {fmt_s(s[k])} | {fmt_s(t[k])} | {ratio:.2f} |")
    rows.append(f"| **peak RSS** (ru_maxrss) | {summary['stock_rss'] / MiB:,.0f} MiB | {summary['t2v_rss'] / MiB:,.0f} MiB "
                f"| {summary['rss_ratio']:.2f} |")
    return "\n".join(rows)


def runs_table(results: list[dict]) -> str:
    rows = ["| Run | side | end to end | denoise/step | decode | load | peak RSS | RSS peak: load / denoise / decode "
            "| load avg before | other processes during the run |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        t, sp = r["times"], r["rss_stage_peak"]
        side = r["side"] if r["side"] == "stock" else f"t2v {r['dtype']} plan={r['plan_used']}"
        stage_rss = " / ".join(f"{sp.get(k, 0) / MiB:,.0f}" for k in ("load", "denoise", "decode"))
        rows.append(f"| {r['tag']} | {side} | {fmt_s(t['total'])} | {fmt_s(t['denoise'] / r['steps'])} | {fmt_s(t['decode'])} "
                    f"| {fmt_s(t['load'])} | {r['rss_peak'] / MiB:,.0f} MiB | {stage_rss} MiB | {r['machine_load']['load1']} "
                    f"| {r['others_cores']:.2f} cores |")
    return "\n".join(rows)


def planner_table(results: list[dict]) -> str:
    """The planner's prediction (made inside generate(), kept in the record) vs the run's measured peak RSS."""
    rows = ["| Run | plan | dtype | predicted peak RSS | measured peak RSS (ru_maxrss) | predicted / measured |",
            "|---|---|---|---:|---:|---:|"]
    for r in results:
        if r["side"] != "t2v":
            continue
        pred = r["memory_plan"]["predicted_peak_mb"]
        meas = r["rss_peak"] / MiB
        rows.append(f"| {r['tag']} | {r['plan_used']} ({r['memory_plan']['requested']}) | {r['dtype']} | {pred:,.0f} MiB "
                    f"| {meas:,.0f} MiB | {pred / meas:.2f} ({(pred - meas) / meas:+.0%}) |")
    return "\n".join(rows)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import diffusers
    import psutil
    import torch
    import transformers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} cores (AVX2; no AVX-512, no AVX512-BF16/AMX), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"no GPU, {platform.system()} {platform.release()}; Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), diffusers {diffusers.__version__}, transformers {transformers.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the full-size one, built if missing; --small: a tiny one)")
    parser.add_argument("--small", action="store_true", help="tiny model (t2v.models.tiny.make_tiny): the same comparison in seconds")
    parser.add_argument("--runs", type=int, help="runs per side, alternating (default 2; --small: 1)")
    parser.add_argument("--bf16", action="store_true", help="also one t2v run with dtype=bf16 (and its frame difference)")
    parser.add_argument("--low", action="store_true", help="also one t2v run with the 'low' memory plan")
    parser.add_argument("--max-load", type=float, default=1.0, help="wait while the 1-min load is above this")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for a quiet machine before each run")
    parser.add_argument("--max-others", type=float, default=0.25,
                        help="redo a run when other processes used more than this many cores during it on average")
    parser.add_argument("--retries", type=int, default=2, help="how many times a contaminated run is redone")
    parser.add_argument("--json", help="write all results here")
    # worker mode (internal)
    parser.add_argument("--worker", choices=("stock", "t2v"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--memory", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=REQUEST["width"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    log = lambda msg: print(msg, flush=True)  # noqa: E731
    runs = args.runs or (1 if args.small else 2)
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmpdir:
        tmp = Path(tmpdir)
        if args.model:
            model = Path(args.model).expanduser().resolve()
        elif args.small:
            from t2v.models.tiny import make_tiny

            model = make_tiny(tmp / "tiny-model", fp16_variant=False)
            (model / "t2v.json").unlink()  # like a plain diffusers folder: t2v falls back to ModelScope's defaults
        else:
            import fullsize

            if not fullsize.is_built(fullsize.DEFAULT_DIR):
                log(f"building the full-size model at {fullsize.DEFAULT_DIR} (once; a few minutes)")
            model = fullsize.build(fullsize.DEFAULT_DIR)
        log(f"model: {model}")
        max_wait = 0 if args.small else args.max_wait
        size = SMALL_SIZE if args.small else REQUEST["width"]
        log(f"request: {PROMPT!r}, {size}x{size}, {REQUEST['num_frames']} frames, {REQUEST['num_inference_steps']} DDIM steps, "
            f"guidance {REQUEST['guidance_scale']}, seed {REQUEST['seed']}, MP4")
        plan = [(side, f"{side}-{i + 1}", {}) for i in range(runs) for side in ("stock", "t2v")]
        if args.low:
            plan.append(("t2v", "low-1", {"memory": "low"}))
        if args.bf16:
            plan.append(("t2v", "bf16-1", {"dtype": "bf16"}))
        results = []
        discarded = []
        for side, tag, extra in plan:
            for attempt in range(1 + args.retries):
                quiet = wait_for_quiet(args.max_load, max_wait, log)
                log(f"{tag}: load {quiet['load1']}, {quiet['busy_cores']} cores busy before the run")
                r = run_worker(side, model, tmp, tag, size=size, **extra)
                r["machine_load"] = quiet
                log(f"  end to end {fmt_s(r['times']['total'])}, process {fmt_s(r['times']['process'])}, "
                    f"peak RSS {r['rss_peak'] / MiB:,.0f} MiB; other processes used {r['others_cores']:.2f} cores meanwhile")
                if r["others_cores"] <= args.max_others or attempt == args.retries:
                    break
                log(f"  discarded: other processes used more than {args.max_others} cores; running {tag} again")
                discarded.append(r)
            results.append(r)
        summary = summarize(results)
        first_stock = next(r for r in results if r["side"] == "stock")
        first_t2v = next(r for r in results if r["tag"] == "t2v-1")
        summary["same_frames"] = frame_diff(first_stock["frames"], first_t2v["frames"])
        for r in results:
            if r["tag"] in ("low-1", "bf16-1"):
                r["frame_diff_vs_fp32"] = frame_diff(first_t2v["frames"], r["frames"])
        summary["machine"] = machine()
        summary["model"] = str(model)
        log("")
        log(table(summary))
        log(f"\nt2v is {summary['speedup']:.2f}x stock end to end; peak RSS {summary['rss_ratio']:.0%} of stock")
        d = summary["same_frames"]
        same = "identical" if d["identical"] else f"max diff {d['max']}, mean {d['mean']:.4f} (of 255)"
        log(f"frames, stock vs t2v (same seed): {same}")
        for r in results:
            if "frame_diff_vs_fp32" in r:
                fd = r["frame_diff_vs_fp32"]
                log(f"{r['tag']} vs fp32 t2v frames: max {fd['max']}, mean {fd['mean']:.3f} (of 255); "
                    f"end to end {fmt_s(r['times']['total'])}, peak RSS {r['rss_peak'] / MiB:,.0f} MiB")
        if args.json:
            Path(args.json).write_text(json.dumps({"summary": summary, "runs": results, "discarded": discarded}, indent=1, default=str))
        log("\nper run:\n" + runs_table(results))
        log("\nmemory planner:\n" + planner_table(results))


if __name__ == "__main__":
    main()
