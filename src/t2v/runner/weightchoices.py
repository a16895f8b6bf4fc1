"""Which weight file for which card: the single files a model's denoiser can run from (bf16 and fp8
``.safetensors``, the GGUF types people download), each one's size, and the GPU memory a run at the model's
defaults needs with it, all on the GPU (``speed``) and streamed (``low``). ``t2v models show`` lists them.

A file's size is counted from the model's configs on the meta device, tensor by tensor, as the files are written:
the 2-D and larger weights whose rows the quantization's block divides in the format's bits (a K-quant mix such
as Q4_K_M at the bits per weight of the published Wan 2.1 14B files, whose mixes keep some layers at a higher
precision), the other tensors in F32 for GGUF (norms and biases, as city96's files keep them) and in bf16 for
safetensors. The memory is the planner's prediction with those bytes (:func:`t2v.planner.memory.estimate_at`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from t2v.families.base import read_index, resolve_class
from t2v.families.meta import meta_modules
from t2v.models import weightfiles
from t2v.planner import memory


@dataclass(frozen=True)
class Format:
    name: str
    ext: str
    bits: float  # per weight of the quantized tensors
    block: int  # the quantization's block along a row (1: none)
    weights: str = "auto"  # how the planner stores the denoiser read from such a file (fp8: one byte a weight)


FORMATS = (
    Format("bf16", ".safetensors", 16, 1),
    Format("fp8 e4m3fn", ".safetensors", 8, 1, "fp8"),
    Format("Q8_0", ".gguf", 8.5, 32),
    Format("Q6_K", ".gguf", 6.5625, 256),
    Format("Q5_K_M", ".gguf", 6.2, 256),
    Format("Q4_K_M", ".gguf", 5.6, 256),  # Wan 2.1 14B: 10.1 GB
    Format("Q3_K_M", ".gguf", 4.6, 256),
    Format("Q2_K", ".gguf", 3.85, 256),  # Wan 2.1 14B: 7.0 GB
)
DENOISERS = ("transformer", "transformer_2")


@dataclass
class Choice:
    format: str
    ext: str
    file_bytes: int  # one denoiser's file (each expert's, for a two-expert model)
    speed_bytes: int  # peak GPU memory at the defaults, everything on the GPU
    low_bytes: int  # the same under the low plan (blocks and text-encoder layers streamed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def readable(path: Path) -> tuple[str, ...]:
    """The model's denoisers a single file can replace (diffusers has a key converter for their class); none for a
    folder that is not a pipeline (a motion adapter's: no model_index.json)."""
    if not (path / "model_index.json").is_file():
        return ()
    index = read_index(path)
    return tuple(n for n in DENOISERS if isinstance(index.get(n), list) and index[n][0]
                 and weightfiles.loadable(resolve_class(*index[n][:2])))


def file_bytes(module, fmt: Format) -> int:
    """Bytes of ``module``'s weights in a file of format ``fmt`` (see the module's docstring)."""
    rest = 4 if fmt.ext == ".gguf" else 2
    return int(sum(p.numel() * (fmt.bits / 8 if p.dim() >= 2 and p.shape[-1] % fmt.block == 0 else rest)
                   for p in module.parameters()))


def choices(path: Path, request, *, family, defaults: dict[str, Any] | None = None) -> list[Choice]:
    """Every format of :data:`FORMATS` for the model in ``path`` at ``request``'s shape (its defaults), in bf16
    on a CUDA GPU; [] when no denoiser of it can be read from a single file."""
    names = readable(path)
    if not names:
        return []
    modules = meta_modules(str(path), names)
    out = []
    for fmt in FORMATS:
        sizes = {n: file_bytes(modules[n], fmt) for n in names}
        stored = sizes if fmt.ext == ".gguf" else None  # GGUF weights stay quantized in memory: the file's size
        peaks = {plan: memory.estimate_at(
            str(path), request.num_frames, request.height, request.width, family=family,
            batch=family.guidance_passes(request), plan=plan, device="cuda", dtype="bf16", weights=fmt.weights,
            window=family.denoised_frames(request, defaults or {}), stored=stored,
            streamed=family.streamed).peak_bytes for plan in ("speed", "low")}
        out.append(Choice(fmt.name, fmt.ext, max(sizes.values()), peaks["speed"], peaks["low"]))
    return out
