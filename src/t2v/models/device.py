"""Device and precision choice: what the request asks for, what the machine can honour."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from t2v.errors import InvalidRequest
from t2v.requests.options import DEVICES, DTYPES, check_device_name, check_dtype_name  # noqa: F401  (named here too)

logger = logging.getLogger(__name__)

_TORCH_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class DevicePlan:
    device: str  # torch device string: "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # fp32 | fp16 | bf16
    warnings: tuple[str, ...] = field(default=())
    reason: str = ""  # why this dtype (recorded as ``dtype_reason``)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, _TORCH_DTYPE[self.dtype])

    @property
    def is_accelerator(self) -> bool:
        return not self.device.startswith("cpu")


def _cuda_ok(device: str) -> bool:
    import torch

    if not torch.cuda.is_available():
        return False
    _, _, index = device.partition(":")
    return not index or int(index) < torch.cuda.device_count()


def _mps_ok() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 matrix arithmetic


def _cpuinfo() -> str:
    """Linux ``/proc/cpuinfo`` ("" where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The native-bf16 flags this CPU reports (Linux ``/proc/cpuinfo``; () where it cannot be read)."""
    flags: set[str] = set()
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``; else the platform's word for it)."""
    import platform

    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def available_devices() -> list[str]:
    """The devices this machine has, as ``--device`` spells them (``cpu`` always; ``cuda:N`` for each GPU, ``mps``)."""
    import torch

    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_ok():
        found.append("mps")
    return found


def check_device_present(device: str) -> None:
    """Refuse ``device`` (an explicit one, already a valid name) when this machine does not have it."""
    present = _cuda_ok(device) if device.startswith("cuda") else _mps_ok() if device == "mps" else True
    if not present:
        what = "no CUDA GPU that torch can use" if device.startswith("cuda") and not _cuda_ok("cuda") else \
            "no MPS (Apple GPU) backend" if device == "mps" else "no such GPU"
        raise InvalidRequest(f"device: {device} is not available on this machine ({what}); available: "
                             f"{', '.join(available_devices())}; nearest valid: auto", field="device")


def plan_device(device: str = "auto", dtype: str = "auto", *, cpu_bf16: bool | None = None) -> DevicePlan:
    """Pick the device and dtype. ``auto``: CUDA (bf16 where supported, else fp16), then MPS (fp16), then CPU:
    bf16 where the CPU has native bf16 matrix arithmetic (AVX-512 BF16 or AMX: ``cpu_bf16``, None = ask the
    CPU), else fp32.

    A device named explicitly that this machine lacks is an :class:`InvalidRequest` naming ``device`` and the
    devices there are (only ``auto`` chooses); a dtype the device cannot honour falls back with a warning (kept
    in the plan, recorded in metadata).
    """
    import torch

    device, dtype = check_device_name(device), check_dtype_name(dtype)
    asked = dtype
    warnings: list[str] = []
    reason = ""
    if device == "auto":
        device = "cuda" if _cuda_ok("cuda") else "mps" if _mps_ok() else "cpu"
    else:
        check_device_present(device)

    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            reason = f"auto: {dtype} on this GPU"
        elif device == "mps":
            dtype, reason = "fp16", "auto: fp16 on mps"
        else:
            if cpu_bf16 is None:
                flags = cpu_bf16_flags()
                dtype = "bf16" if flags else "fp32"
                reason = (f"auto: bf16, the CPU has native bf16 arithmetic ({', '.join(flags)})" if flags else
                          "auto: fp32, the CPU has no native bf16 arithmetic (AVX-512 BF16 or AMX)")
            else:
                dtype = "bf16" if cpu_bf16 else "fp32"
                reason = f"auto: {dtype} (T2V_CPU_BF16={int(cpu_bf16)})"
    elif device == "cpu" and dtype == "fp16":
        warnings.append("fp16 is not supported for these models on cpu; using fp32")
        dtype = "fp32"
    elif device.startswith("cuda") and dtype == "bf16" and not torch.cuda.is_bf16_supported():
        warnings.append("bf16 is not supported on this GPU; using fp16")
        dtype = "fp16"
    for w in warnings:
        logger.warning(w)
    if not reason:
        reason = f"asked for {asked}" + (f", using {dtype}" if dtype != asked else "")
    return DevicePlan(device=device, dtype=dtype, warnings=tuple(warnings), reason=reason)


# On a CPU, bf16 pays off only where arithmetic dominates a step. Measured on an AMD EPYC with AVX-512 BF16:
# the full-size ModelScope UNet (5.6 GB of fp32 weights) steps about 1.8x faster in bf16, t2v-shapes' (10 MB)
# 1.19x *slower* (its small ops are bound by per-op overhead, and bf16 adds conversions; docs/speed.md).
CPU_BF16_MIN_DENOISER_BYTES = 256 << 20
DENOISER_FOLDERS = ("unet", "transformer", "transformer_2")


def denoiser_bytes(path) -> int | None:
    """The size on disk of a model folder's denoiser weights (``unet/``, ``transformer/``, ``transformer_2/``;
    one weight variant: the plain files where there are any), or None where the folder has none of them."""
    from pathlib import Path

    total, found = 0, False
    for name in DENOISER_FOLDERS:
        folder = Path(path) / name
        if not folder.is_dir():
            continue
        files = [f for f in folder.iterdir() if f.suffix in (".safetensors", ".bin") and f.is_file()]
        plain = [f for f in files if f.name.count(".") == 1]  # not a variant (name.fp16.safetensors)
        for f in plain or files:
            total, found = total + f.stat().st_size, True
    return total if found else None


def fit_to_model(plan: DevicePlan, path, *, asked: str = "auto", cpu_bf16: bool | None = None) -> DevicePlan:
    """``plan`` for the model at ``path``: where ``auto`` chose bf16 on a CPU because the CPU has native bf16
    (not because ``T2V_CPU_BF16=1`` asked), a denoiser under :data:`CPU_BF16_MIN_DENOISER_BYTES` computes in
    fp32 instead, which is faster there."""
    if asked != "auto" or cpu_bf16 is not None or plan.device != "cpu" or plan.dtype != "bf16":
        return plan
    size = denoiser_bytes(path)
    if size is None or size >= CPU_BF16_MIN_DENOISER_BYTES:
        return plan
    reason = (f"auto: fp32, this model's denoiser is small ({size / 2**20:,.0f} MB of weights, under "
              f"{CPU_BF16_MIN_DENOISER_BYTES >> 20} MB): on the CPU its steps are faster in fp32, though the CPU "
              f"has native bf16")
    return DevicePlan(device=plan.device, dtype="fp32", warnings=plan.warnings, reason=reason)


def set_threads(threads: int) -> int:
    """Make torch compute with ``threads`` CPU threads (process-wide); returns the number set. Without a call,
    torch's own default stands: the physical cores."""
    import torch

    n = int(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@lru_cache(maxsize=None)
def tune_allocator(threshold_kb: int) -> bool:
    """Fix glibc malloc's mmap threshold at ``threshold_kb`` (0: leave glibc's default). True when set.

    By default glibc raises the threshold to the size of each large block freed (up to 32 MB), so after the
    first step most activations come from the heap, and freed heap memory stays in the RSS. A fixed
    threshold keeps large tensors in their own mappings, returned to the OS when freed: on the full-size
    model the peak RSS drops by 8% but every large tensor is page-faulted anew, and denoising is 30% slower
    on CPU, hence opt-in (``T2V_MMAP_THRESHOLD_KB=128``; benchmarks.md).
    """
    if threshold_kb <= 0 or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, threshold_kb * 1024))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        return False
