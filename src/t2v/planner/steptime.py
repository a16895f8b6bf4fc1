"""Time per step and per decode: estimated before anything loads, then learned from the runs on this machine.

The estimate starts from the planner's dry run (:mod:`t2v.planner.memory`): the FLOPs and operator calls of one
denoising step and of the whole decode. FLOPs take the time of this machine's measured matmul speed in the
run's dtype; operator calls take the measured cost of one call in a small block of the layers video models
are made of (Python, dispatch and thread start-up: what a small model's step is made of). Both are measured once
per process (about 0.1 s). For a large model the estimate is optimistic: attention and elementwise work
run below the matmul speed (a full-size ModelScope step on a CPU in bf16 took 1.46x it, in fp32 about 1.05x).

Each finished run records what it measured beside the estimate's inputs in ``$T2V_HOME/cache/step-times.json``,
under a key of the architecture, this machine (CPU model or GPU name, and threads), the dtype, weights storage,
memory plan, step cache and attention kernel. A prediction for a key with runs scales the estimate by the median
ratio measured / estimated of its last :data:`KEPT` runs, so it holds at other shapes too (``t2v plan`` says
which it used); a key without runs borrows those of the same settings under the other memory plans.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2v.planner.plans import get_plan
from t2v.errors import InvalidRequest
from t2v.models.diskcache import cache_path, merge_entries, read_entries
from t2v.models.device import cpu_bf16_flags, cpu_model
from t2v.planner.dryruns import architecture_hash
from t2v.runtime import memoized

logger = logging.getLogger(__name__)

CACHE_NAME = "step-times.json"
_VERSION = 1
LIMIT = 200  # keys kept (the newest)
KEPT = 5  # runs kept per key


@dataclass(frozen=True)
class Work:
    """What the dry run counted of one request: one step's and the whole decode's FLOPs and operator calls."""

    step_flops: int
    step_ops: int
    decode_flops: int
    decode_ops: int

    @classmethod
    def of(cls, numbers: dict[str, Any]) -> Work:
        """From a dry run's (or a stored run's) numbers; dry runs older than the operator count have none."""
        return cls(int(numbers["step_flops"]), int(numbers.get("step_ops", 0)), int(numbers["decode_flops"]),
                   int(numbers.get("decode_ops", 0)))


@dataclass(frozen=True)
class Times:
    step_s: float
    decode_s: float
    runs: int  # earlier runs the times were scaled from (0: estimated only)
    other_plans: bool = False  # those runs were under other memory plans (this one has none yet)
    compile_s: float = float("nan")  # a compiled run's compile time: the median of those runs' (nan: none yet)


SPEEDS_NAME = "machine-speeds.json"  # this machine's measured matmul speed and cost per operator call


def machine_key(device: str, dtype: str) -> str:
    """What the measured speeds depend on: the device (its model), the dtype, torch and its thread count."""
    import torch

    if device.startswith("cuda"):
        what = torch.cuda.get_device_name(torch.device(device))
    else:
        what = next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines()
                     if line.startswith("model name")), "unknown cpu")
    return f"{device}|{dtype}|torch {torch.__version__}|{torch.get_num_threads()} threads|{what}"


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def measured(name: str, device: str, dtype: str, measure) -> float:
    """``measure()``, kept in ``$T2V_HOME/cache/machine-speeds.json`` for this machine (:func:`machine_key`): a new
    process reads it instead of measuring again (about 0.3 s on a 2-core CPU, at every cold start)."""
    file = cache_path(SPEEDS_NAME)
    key = machine_key(device, dtype)
    kept = read_entries(file, _VERSION, "speeds").get(key, {}) if file is not None else {}
    if isinstance(kept.get(name), (int, float)) and kept[name] > 0:
        return float(kept[name])
    value = measure()
    if file is not None:
        merge_entries(file, _VERSION, "speeds", {key: {**kept, name: value}}, limit=LIMIT)
    return value


@memoized("matmul-speeds", 8)
def matmul_speed(device: str, dtype: str) -> float:
    """Matmul FLOP/s for this device and dtype (the estimate's speed of light), measured once per machine."""
    return measured("matmul_flops", device, dtype, lambda: measure_matmul(device, dtype))


def measure_matmul(device: str, dtype: str) -> float:
    import torch

    n = 1024 if device == "cpu" else 4096
    with own_rng(device):
        a = torch.randn(n, n, device=device, dtype=_torch_dtype(dtype))
        b = torch.randn_like(a)
    seconds = _timed(lambda: a @ b, device, 3 if device == "cpu" else 20)
    return 2 * n**3 / seconds


@memoized("op-costs", 8)
def op_cost(device: str, dtype: str) -> float:
    """Seconds per operator call of a small block of the layers video models use (normalisation, SiLU, 3x3
    convolution, attention, linear) at a size where the arithmetic is a small part: the overhead each call
    adds whatever its size. Its FLOPs, at :func:`matmul_speed`, are taken out. Measured once per machine."""
    return measured("op_cost_s", device, dtype, lambda: measure_op_cost(device, dtype))


def measure_op_cost(device: str, dtype: str) -> float:
    with own_rng(device):
        block = _block(device, dtype)
    seconds = _timed(block, device, 50)
    return max((seconds - BLOCK_FLOPS / matmul_speed(device, dtype)) / BLOCK_CALLS, 1e-7)


def own_rng(device: str):
    """A context in which random numbers leave the process's generators (CPU, and this device's) as they were:
    measuring here inside a run must not move what a later unseeded draw gives."""
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        index = torch.device(device).index
        return torch.random.fork_rng(devices=[torch.cuda.current_device() if index is None else index], device_type=kind)
    if kind == "mps":
        return torch.random.fork_rng(devices=[0], device_type=kind)
    return torch.random.fork_rng(devices=[])


# What the dry run's counter sees of one _block() call (tests/models/test_steptime.py counts them): counting
# here would cost a second (the first dispatch mode of a process).
BLOCK_CALLS = 15
BLOCK_FLOPS = 2 * 8 * 64 * 32 * 32 * 9 + 2 * 512 * 32 * 96 + 2 * 2 * 8 * 2 * 64 * 64 * 16


def _block(device: str, dtype: str):
    import torch
    import torch.nn.functional as F

    dt = _torch_dtype(dtype)
    x = torch.randn(8, 32, 8, 8, device=device, dtype=dt)
    norm, conv = torch.nn.GroupNorm(8, 32).to(device, dt), torch.nn.Conv2d(32, 32, 3, padding=1).to(device, dt)
    proj = torch.nn.Linear(32, 96).to(device, dt)

    def block():
        h = x + conv(F.silu(norm(x)))
        q, k, v = proj(h.flatten(2).transpose(1, 2)).view(8, 64, 3, 2, 16).unbind(2)
        return h + F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).sum()

    return block


def _timed(fn, device: str, reps: int) -> float:
    """Seconds per call of ``fn`` after one untimed call."""
    import torch

    sync = (torch.cuda.synchronize if device.startswith("cuda") else torch.mps.synchronize if device == "mps"
            else (lambda: None))
    with torch.inference_mode():
        fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
    return (time.perf_counter() - t0) / reps


def _torch_dtype(dtype: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def estimate(work: Work, device: str, dtype: str) -> tuple[float, float]:
    """Seconds per step and for the decode: FLOPs at the matmul speed, plus the operator calls' overhead."""
    speed, per_call = matmul_speed(device, dtype), op_cost(device, dtype)
    return (work.step_flops / speed + work.step_ops * per_call,
            work.decode_flops / speed + work.decode_ops * per_call)


def machine(device: str) -> str:
    """This machine as the times depend on it: the CPU model, its native bf16 and threads, or the GPU's name
    (virtual machines often name only the CPU's make)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device == "mps":
        return "mps"
    return f"{cpu_model()} ({' '.join(cpu_bf16_flags()) or 'no native bf16'}), {torch.get_num_threads()} threads"


def key(path: str | Path, *, device: str, dtype: str, weights: str, plan: str, cache: str | None, attention: str,
        compile: bool = False) -> str:
    """The runs that predict each other: the same architecture, machine and settings (compiled runs apart: their
    steps run other kernels, and they have a compile time; they borrow from no uncompiled run)."""
    fields = [architecture_hash(Path(path)), machine(device), dtype, weights, plan, cache, attention]
    return json.dumps(fields + ["compiled"] if compile else fields)


PLAN_FIELD = 4  # the memory plan's place in a key


def _runs(entries: dict[str, Any], run_key: str, device: str) -> tuple[list, bool]:
    """The runs under ``run_key``; when it has none, the newest :data:`KEPT` of the same key under other memory
    plans (the plans change how memory is held, which the dry run counts, more than how fast the arithmetic
    runs; on an accelerator only between plans that offload alike), and whether they are borrowed."""
    own = entries.get(run_key, {}).get("runs", [])
    if own:
        return own, False
    try:
        want = json.loads(run_key)
    except ValueError:
        return [], False
    others: list = []
    for k, entry in entries.items():
        try:
            have = json.loads(k)
        except ValueError:
            continue
        if (isinstance(have, list) and len(have) == len(want) and isinstance(entry, dict)
                and all(a == b for i, (a, b) in enumerate(zip(have, want)) if i != PLAN_FIELD)
                and _alike(have[PLAN_FIELD], want[PLAN_FIELD], device)):
            others += [r for r in entry.get("runs", []) if isinstance(r, dict)]
    others = sorted(others, key=lambda r: r.get("at", 0) if isinstance(r.get("at", 0), (int, float)) else 0)[-KEPT:]
    return others, bool(others)


def _alike(plan: str, other: str, device: str) -> bool:
    """Whether runs under memory plan ``plan`` can stand for ``other``'s (offloading moves the weights to an
    accelerator every step; on the CPU it does nothing)."""
    try:
        return device == "cpu" or get_plan(plan).offload == get_plan(other).offload
    except InvalidRequest:
        return False


def observe(run_key: str, work: Work, *, steps: int, denoise_s: float, decode_s: float,
            compile_s: float | None = None) -> None:
    """Keep what a finished run measured (``steps`` steps in ``denoise_s``; the decode in ``decode_s``; a compiled
    run's ``compile_s``, which its stages do not count: t2v.progress carves it out)."""
    if steps < 1 or denoise_s <= 0 or decode_s <= 0 or not (work.step_flops or work.step_ops):
        return  # nothing to scale from: a run planned from a bound (t2v.planner.bound) counted no work
    file = cache_path(CACHE_NAME)
    if file is None:
        return
    run = {**work.__dict__, "step_s": denoise_s / steps, "decode_s": decode_s, "at": round(time.time())}
    if compile_s:
        run["compile_s"] = compile_s
    earlier = read_entries(file, _VERSION, "keys").get(run_key, {}).get("runs", [])
    runs = [r for r in earlier if isinstance(r, dict)][-(KEPT - 1):] + [run]
    merge_entries(file, _VERSION, "keys", {run_key: {"runs": runs}}, limit=LIMIT)


def predict(work: Work, run_key: str | None, device: str, dtype: str) -> Times:
    """The step and decode times of ``work``: the estimate, scaled by the earlier runs under ``run_key``."""
    step_s, decode_s = estimate(work, device, dtype)
    file = cache_path(CACHE_NAME) if run_key is not None else None
    runs, borrowed = _runs(read_entries(file, _VERSION, "keys"), run_key, device) if file is not None else ([], False)
    step_ratios, decode_ratios = [], []
    for run in runs:
        try:
            then_step, then_decode = estimate(Work.of(run), device, dtype)
            step_ratios.append(float(run["step_s"]) / then_step)
            decode_ratios.append(float(run["decode_s"]) / then_decode)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            logger.debug("ignoring a damaged step-times entry: %s", run)
    if not step_ratios:
        return Times(step_s, decode_s, 0)
    compiles = [float(r["compile_s"]) for r in runs if isinstance(r.get("compile_s"), (int, float))]
    return Times(step_s * statistics.median(step_ratios), decode_s * statistics.median(decode_ratios), len(step_ratios),
                 borrowed, statistics.median(compiles) if compiles else float("nan"))
