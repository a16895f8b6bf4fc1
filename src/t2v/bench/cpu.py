"""CPU comparison, parent side: alternate fresh stock and t2v runs, take medians, check the frames agree.

Both sides make the same clip (``t2v.bench.PROMPT``, 8 frames, 2 DDIM steps, guidance 9, seed 0, MP4, fp32)
from the same model folder. Each run is a fresh ``python -m t2v.bench.worker`` subprocess, so its peak RSS
(``ru_maxrss``) is that run's alone; runs alternate stock, t2v, stock, t2v, ... and medians are reported.
Both use the empty negative prompt (diffusers' default), so both must produce the same frames.
Nothing here passes or fails on timings: it measures and reports.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from t2v.bench import FULL_SIZE, SMALL_SIZE, spec as bench_spec
from t2v.errors import InvalidRequest, ModelUnavailable, T2VError
from t2v.models.tiny import make_tiny
import t2v
from t2v.bench.spec import TOLERANCE, exact_reason, modelscope_spec, write
from t2v.models.catalog import CATALOG
from t2v.models.device import cpu_model
from t2v.families import make_tiny_model
from t2v.models.source import check_folder
from t2v.families import get_family

Log = Callable[[str], None]


class BenchRunFailed(T2VError):
    """A benchmark subprocess exited with an error (``stderr`` holds the end of its output)."""

    def __init__(self, message: str, stderr: str = ""):
        super().__init__(message)
        self.stderr = stderr


def check_options(*, runs: int, size: int | None = None, model: Path | None = None, max_wait: float = 0,
                  retries: int = 0, json_path: Path | None = None, frames: int | None = None, steps: int | None = None,
                  family: str | None = None, plan: dict | None = None) -> Path | None:
    """Raise InvalidRequest for a bad option, before anything slow; return the model folder, resolved.

    With ``family`` or ``plan`` (the t2v side's options, :func:`t2v.bench.spec.plan_fields`) it also checks the
    family name and that the family takes the request and the plan (:func:`t2v.bench.spec.check`)."""
    if runs < 1:
        raise InvalidRequest(f"--runs must be at least 1, got {runs}", field="runs")
    if size is not None and (size < 8 or size > 2048 or size % 8):
        raise InvalidRequest(f"--size must be a multiple of 8 from 8 to 2048, got {size}", field="size")
    if frames is not None and frames < 1:
        raise InvalidRequest(f"--frames must be at least 1, got {frames}", field="frames")
    if steps is not None and steps < 1:
        raise InvalidRequest(f"--steps must be at least 1, got {steps}", field="steps")
    if max_wait < 0:
        raise InvalidRequest(f"--max-wait must not be negative, got {max_wait:g}", field="max_wait")
    if retries < 0:
        raise InvalidRequest(f"--retries must not be negative, got {retries}", field="retries")
    if json_path is not None and not json_path.expanduser().resolve().parent.is_dir():
        raise InvalidRequest(f"--json-out: folder {json_path.expanduser().parent} does not exist", field="json_out")
    folder = None
    if model is not None:
        path = model.expanduser()
        if not path.is_dir():
            raise ModelUnavailable(f"--model: {model} is not a folder" if path.exists() else f"--model: {model} does not exist")
        check_folder(path.resolve(), get_family)
        folder = path.resolve()
    if family is not None or plan is not None or frames is not None or steps is not None:
        bench_spec.check(family=family, folder=folder, size=size, frames=frames, steps=steps,
                         plan=plan or bench_spec.plan_fields())
    return folder


def make_small_model(folder: Path) -> Path:
    """The tiny random-weight model (t2v.models.tiny.make_tiny) as a plain diffusers folder."""
    model = make_tiny(folder, fp16_variant=False)
    (model / "t2v.json").unlink(missing_ok=True)  # like a plain diffusers folder: t2v falls back to ModelScope's defaults
    return model


def cpu_busy(seconds: float = 5.0) -> float:
    """Cores' worth of CPU in use by anything over ``seconds`` (0..cores)."""
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100 * (os.cpu_count() or 1)


def wait_for_quiet(max_load: float, max_wait_s: float, log: Log) -> dict:
    """Wait (60 s at a time, up to ``max_wait_s``) while the 1-minute load is over ``max_load``.

    The load average lags: right after one of our own runs it is still ~2 with nothing running. So the
    machine also counts as quiet when a 5 s sample shows under 0.2 cores busy. With ``max_wait_s`` 0 it
    only records the load (a 0.5 s sample).
    """
    waited = 0.0
    while True:
        load = os.getloadavg()[0]
        busy = cpu_busy(5.0 if max_wait_s > 0 else 0.5)
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


def _worker_env(tmp: Path) -> dict:
    """Offline, a private T2V_HOME, and this t2v importable even when it is a source checkout not installed."""
    src = str(Path(t2v.__file__).resolve().parent.parent)
    path = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "T2V_HOME": str(tmp / "home"), "PYTHONPATH": path}


def run_worker(side: str, model: Path, tmp: Path, tag: str, *, size: int | None = None, dtype: str | None = None,
               memory: str | None = None, env: dict | None = None, spec: dict | None = None) -> dict:
    """One fresh ``python -m t2v.bench.worker`` run of ``side`` for ``spec`` (default: the ModelScope comparison
    at ``size``); ``dtype`` and ``memory`` override the spec's t2v plan."""
    spec = dict(spec or modelscope_spec(str(model), size or FULL_SIZE))
    spec["plan"] = {**spec["plan"], **({"dtype": dtype} if dtype else {}), **({"memory": memory} if memory else {})}
    out = tmp / f"{tag}.json"
    spec_file = write(spec, tmp / f"{tag}.spec.json")
    cmd = [sys.executable, "-m", "t2v.bench.worker", "--side", side, "--spec", str(spec_file), "--out", str(out)]
    busy0, kids0 = _busy_cpu_s(), _children_cpu_s()
    t0 = time.perf_counter()
    environ = {k: v for k, v in {**_worker_env(tmp), **(env or {})}.items() if v is not None}  # None: unset it
    proc = subprocess.run(cmd, env=environ, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    # CPU time the rest of the machine used meanwhile (everything busy minus this run): contamination.
    others = max(0.0, (_busy_cpu_s() - busy0) - (_children_cpu_s() - kids0))
    if proc.returncode != 0:
        last = next((line for line in reversed(proc.stderr.strip().splitlines()) if line.strip()), "no output")
        raise BenchRunFailed(f"the {side} run failed (exit {proc.returncode}): {last.strip()[:300]}", proc.stderr[-4000:])
    res = json.loads(out.read_text())
    res["times"]["process"] = wall
    res["tag"] = tag
    res["others_cores"] = others / wall
    return res


def frame_diff(a_path: str, b_path: str) -> dict:
    import numpy as np

    a, b = np.load(a_path).astype(np.int16), np.load(b_path).astype(np.int16)
    if a.shape != b.shape:
        return {"max": 255, "mean": float("nan"), "identical": False, "shape": list(a.shape), "other_shape": list(b.shape)}
    d = np.abs(a - b)
    return {"max": int(d.max()), "mean": float(d.mean()), "identical": bool((d == 0).all()), "shape": list(a.shape)}


def median_times(runs: list[dict]) -> dict:
    keys = runs[0]["times"].keys()
    return {k: statistics.median(r["times"][k] for r in runs) for k in keys}


def summarize(results: list[dict]) -> dict:
    """Medians per side (the fp32 ``t2v-N`` runs only); denoise per step."""
    stock = [r for r in results if r["side"] == "stock"]
    t2v = [r for r in results if r["side"] == "t2v" and r["tag"].startswith("t2v-")]
    s, t = median_times(stock), median_times(t2v)
    steps = stock[0]["steps"]
    for m in (s, t):
        m["denoise"] /= steps  # per step
    stock_rss = statistics.median(r["rss_peak"] for r in stock)
    t2v_rss = statistics.median(r["rss_peak"] for r in t2v)
    out = {"stock": s, "t2v": t, "stock_rss": stock_rss, "t2v_rss": t2v_rss, "speedup": s["total"] / t["total"],
           "rss_ratio": t2v_rss / stock_rss, "n_stock": len(stock), "n_t2v": len(t2v)}
    auto = [r for r in results if r["tag"].startswith("auto-")]
    if auto:  # t2v's default plan, beside the fp32 comparison
        a = median_times(auto)
        a["denoise"] /= steps
        auto_rss = statistics.median(r["rss_peak"] for r in auto)
        out.update(auto=a, auto_rss=auto_rss, auto_speedup=s["total"] / a["total"], auto_rss_ratio=auto_rss / stock_rss,
                   auto_dtype=auto[0]["dtype"], auto_plan=auto[0]["plan_used"], n_auto=len(auto))
    return out


def machine() -> str:
    """CPU, cores, memory, GPU and library versions, in one line."""
    import diffusers
    import psutil
    import torch
    import transformers

    cpu, flags = cpu_model(), set()
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        pass
    isa = ", ".join(name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                                            ("amx_bf16", "AMX-BF16")) if flag in flags) or "ISA unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {cores} cores ({isa}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {gpu} (not used), "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), diffusers {diffusers.__version__}, transformers {transformers.__version__}")


def compare(model: Path, tmp: Path, *, runs: int = 1, size: int = SMALL_SIZE, low: bool = False, bf16: bool = False,
            auto: bool = False, fixed_mmap: bool = False, max_load: float = 1.0, max_wait: float = 0.0, max_others: float = 0.25, retries: int = 0,
            log: Log = lambda msg: None, spec: dict | None = None) -> dict:
    """Run the comparison on ``model`` (a diffusers folder) with scratch files in ``tmp``.

    ``spec`` (:mod:`t2v.bench.spec`: family, request, the t2v plan, the stock call's extras) defaults to the
    ModelScope comparison at ``size`` pixels (8 frames, 2 DDIM steps, guidance 9, fp32 on both sides).
    Returns ``{"summary": ..., "runs": [...], "discarded": [...]}``: ``summary`` has the medians per side
    (``stock``, ``t2v``), ``speedup``, ``rss_ratio`` and ``same_frames`` (stock vs t2v, same seed; its
    ``check`` is ``pass`` or ``fail`` when t2v ran the stock computation, within 2/255, else ``info`` with
    ``reason``). A run during which other processes used more than ``max_others`` cores on average is redone
    up to ``retries`` times; every run records ``others_cores``. With ``fixed_mmap`` each round adds a t2v run
    with a fixed 128 KiB mmap threshold (``T2V_MMAP_THRESHOLD_KB=128``), tagged ``mmap128-N``. With ``auto`` each
    round adds a t2v run with t2v's default plan (dtype and memory plan ``auto``, as t2v picks them on this
    machine), tagged ``auto-N``; the summary then has its medians (``auto``), ``auto_speedup`` and
    ``auto_rss_ratio`` against stock. An untimed ``auto-warmup`` run goes first (``warmup``): the timed runs
    find t2v's on-disk caches in their shared T2V_HOME as a user's second run does.
    """
    spec = spec or modelscope_spec(str(model), size)
    rounds = [("stock", "stock", {}), ("t2v", "t2v", {})]
    if auto:  # t2v's default plan: dtype and memory plan as t2v picks them on this machine
        default_plan = {"dtype": "auto", "memory": "auto", "env": {"T2V_CPU_BF16": None}}
        rounds.append(("t2v", "auto", default_plan))
    if fixed_mmap:
        rounds.append(("t2v", "mmap128", {"env": {"T2V_MMAP_THRESHOLD_KB": "128"}}))
    plan = [(side, f"{name}-{i + 1}", extra) for i in range(runs) for side, name, extra in rounds]
    if low:
        plan.append(("t2v", "low-1", {"memory": "low"}))
    if bf16:
        plan.append(("t2v", "bf16-1", {"dtype": "bf16"}))
    results: list[dict] = []
    discarded: list[dict] = []
    warmup = []
    if auto:  # untimed, as a user's first run: fills the shared T2V_HOME's caches (file hashes, dry runs, converted weights)
        log("auto-warmup: untimed, fills t2v's on-disk caches")
        warmup.append(run_worker("t2v", model, tmp, "auto-warmup", spec=spec, **default_plan))
    for side, tag, extra in plan:
        for attempt in range(1 + retries):
            quiet = wait_for_quiet(max_load, max_wait, log)
            log(f"{tag}: load {quiet['load1']}, {quiet['busy_cores']} cores busy before the run")
            r = run_worker(side, model, tmp, tag, spec=spec, **extra)
            r["machine_load"] = quiet
            log(f"  end to end {r['times']['total']:.2f} s, process {r['times']['process']:.2f} s, peak RSS "
                f"{r['rss_peak'] / 2**20:,.0f} MiB; other processes used {r['others_cores']:.2f} cores meanwhile")
            if r["others_cores"] <= max_others or attempt == retries:
                break
            log(f"  discarded: other processes used more than {max_others} cores; running {tag} again")
            discarded.append(r)
        results.append(r)
    summary = summarize(results)
    first_stock = next(r for r in results if r["side"] == "stock")
    first_t2v = next(r for r in results if r["tag"] == "t2v-1")
    same = frame_diff(first_stock["frames"], first_t2v["frames"])
    reason = exact_reason(spec["plan"], [r["plan_used"] for r in results if r["tag"].startswith("t2v-")])
    same["tolerance"] = TOLERANCE
    same["check"] = "info" if reason else ("pass" if same["max"] <= TOLERANCE else "fail")
    if reason:
        same["reason"] = reason
    summary["same_frames"] = same
    for r in results:
        if r["tag"] in ("low-1", "bf16-1") or r["tag"].startswith(("mmap128-", "auto-")):
            r["frame_diff_vs_fp32"] = frame_diff(first_t2v["frames"], r["frames"])
    summary["max_others_cores"] = max(r["others_cores"] for r in results)
    summary["machine"] = machine()
    summary["model"] = str(model)
    req = spec["request"]
    summary["request"] = {"size": size if req["width"] == req["height"] == size else req["width"], "runs_per_side": runs,
                          "family": spec["family"], "kind": spec.get("kind"),
                          "square": bool(CATALOG.card(spec["family"]).bench_square) and req["width"] == req["height"],
                          **{k: req[k] for k in ("width", "height", "num_frames", "num_inference_steps", "guidance_scale",
                                                 "scheduler", "fps")},
                          "stock_extra": spec["stock"]}
    summary["plan"] = spec["plan"]
    return {"summary": summary, "runs": results, "discarded": discarded, "warmup": warmup}


def run_small(*, runs: int = 1, model: Path | None = None, size: int | None = None, max_load: float = 1.0,
              max_wait: float = 0.0, retries: int = 0, log: Log = lambda msg: None, workdir: Path | None = None,
              family: str | None = None, frames: int | None = None, steps: int | None = None,
              plan: dict | None = None, default_plan: bool = False) -> dict:
    """What ``t2v bench`` runs: the comparison on ``model``, or on the tiny model of ``family`` (default
    ModelScope) built in a temporary folder, with the t2v side's ``plan`` (:func:`t2v.bench.spec.plan_fields`);
    ``default_plan`` adds t2v's default plan each round (:func:`compare`'s ``auto``).

    ModelScope's ``size`` defaults to 64 pixels for the tiny model and 256 for a given folder; the other
    families take their size and frame count from the folder's defaults (the tiny models': small and valid).
    """
    import tempfile

    plan = plan or bench_spec.plan_fields()
    folder = check_options(runs=runs, size=size, model=model, max_wait=max_wait, retries=retries, frames=frames,
                           steps=steps, family=family, plan=plan)
    kind = bench_spec.check(family=family, folder=folder, size=size, frames=frames, steps=steps, plan=plan)
    with tempfile.TemporaryDirectory(prefix="t2v-bench-", dir=workdir) as tmpdir:
        tmp = Path(tmpdir)
        card = CATALOG.card(kind)
        if folder is None:
            log(f"building a tiny random-weight {kind} model")
            folder = make_tiny_model(kind, tmp / "tiny-model", fp16_variant=False)
            if card.bench_plain:
                (folder / "t2v.json").unlink(missing_ok=True)
        if card.bench_square:
            size = size or card.bench_square[model is not None]
        spec = bench_spec.build(kind, folder, size=size, frames=frames, steps=steps, plan=plan)
        req = spec["request"]
        size = size or req["width"]
        what = folder if model is not None else f"tiny {kind} (t2v.families.make_tiny_model)"
        log(f"model: {what}, {req['width']}x{req['height']}, {req['num_frames']} frames, {req['num_inference_steps']} "
            f"steps ({req['scheduler']}), t2v plan: {bench_spec.plan_label(spec['plan'])}; {runs} run(s) per side")
        result = compare(folder, tmp, runs=runs, size=size, max_load=max_load, max_wait=max_wait, retries=retries, log=log,
                         spec=spec, auto=default_plan)
        for r in result["runs"] + result["discarded"]:
            r.pop("frames", None)  # paths into the temporary folder, gone after this
        return result
