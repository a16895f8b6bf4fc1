"""One component's weights from a single file, over a base model that supplies the configs and the other
components: the files people download for ComfyUI and Wan2GP (``--transformer wan2.1_t2v_14B_fp8_e4m3fn.safetensors``).

* **Formats**: safetensors in the model's original key layout, ComfyUI's (the same keys under
  ``model.diffusion_model.``) or diffusers' own, in bf16, fp16, fp32 or float8 (e4m3fn / e5m2); float8 with
  per-tensor scales (``<layer>.scale_weight``, Kijai's and ComfyUI's "scaled" files), which diffusers' converters
  do not apply and t2v does, as it loads; and GGUF (``Q8_0``, ``Q4_0``, the K-quants and the files that mix them,
  read by diffusers' GGUF support through the ``gguf`` package: ``pip install 't2v[gguf]'``).
* **Checked before any weight loads** (:func:`check`): the file's tensor names and shapes, read from its header,
  are put through diffusers' own key converter on the meta device and compared with the component the base
  model's config builds. A LoRA, a file of another family, or one of another size is refused naming the file,
  what it holds and what was expected.
* **Loaded** (:func:`load`) with diffusers' ``from_single_file`` and the base folder's config (nothing is
  downloaded); the classes it has a converter for are the ones a file can replace (:func:`loadable`).

Which component a file replaces is the caller's: the runner hands the class down (``cls``), read from the base
model's ``model_index.json``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2v.errors import ModelUnavailable
from t2v.models.tensorfiles import read_header

logger = logging.getLogger(__name__)

EXTS = (".safetensors", ".gguf")
SCALE_KEYS = ("scale_weight",)  # <layer>.scale_weight: the float8 weight times this is the weight
DROPPED = ("scale_input", "scaled_fp8")  # activation scales (unused when computing in bf16) and ComfyUI's marker
LORA_MARKS = ("lora_A", "lora_B", "lora_down", "lora_up", ".alpha", "lora.down", "lora.up")
GGUF_PLAIN = ("F32", "F16", "BF16")


@dataclass(frozen=True)
class FileInfo:
    """What a weight file's header says: its format, tensors (name -> (shape, stored type)) and size."""

    path: Path
    format: str  # "safetensors" or "gguf"
    tensors: dict[str, tuple[tuple[int, ...], str]]
    size: int

    @property
    def types(self) -> list[str]:
        """The stored types, most common first (``F8_E4M3``, ``BF16``, ``Q8_0``, ...)."""
        counts: dict[str, int] = {}
        for _, t in self.tensors.values():
            counts[t] = counts.get(t, 0) + 1
        return sorted(counts, key=lambda t: -counts[t])

    @property
    def scaled(self) -> bool:
        """Float8 weights with per-tensor scales to apply."""
        return any(name.endswith(tuple("." + k for k in SCALE_KEYS)) for name in self.tensors)

    def describe(self) -> str:
        """``GGUF, Q8_0 + F32, 12.3 MB`` (for messages and the record)."""
        return f"{self.format}, {' + '.join(self.types[:3])}{', scaled' if self.scaled else ''}, {self.size / 1e6:.1f} MB"


def read(path: Path) -> FileInfo:
    """The header of a weight file (nothing else is read); ModelUnavailable naming the file when it is not one."""
    path = Path(path)
    if path.suffix not in EXTS:
        raise ModelUnavailable(f"{path}: not a weight file t2v reads (expected one of: {', '.join(EXTS)})")
    if not path.is_file():
        raise ModelUnavailable(f"{path}: no such file")
    size = path.stat().st_size
    try:
        if path.suffix == ".gguf":
            tensors = _gguf_tensors(path)
        else:
            _, header = read_header(path)
            tensors = {n: (tuple(int(x) for x in e["shape"]), str(e["dtype"])) for n, e in header.items()}
            _check_extent(path, header, size)
    except ModelUnavailable:
        raise
    except ImportError:
        raise ModelUnavailable(f"{path}: reading GGUF files needs the gguf package (pip install 't2v[gguf]')") from None
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say so, naming it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelUnavailable(f"{path}: not a readable {path.suffix[1:]} file, truncated or damaged ({first[:160]}); "
                               "download it again") from None
    if not tensors:
        raise ModelUnavailable(f"{path}: holds no tensors")
    return FileInfo(path, "gguf" if path.suffix == ".gguf" else "safetensors", tensors, size)


def _check_extent(path: Path, header: dict[str, Any], size: int) -> None:
    start = 8 + int.from_bytes(path.open("rb").read(8), "little")
    end = start + max((int(e["data_offsets"][1]) for e in header.values()), default=0)
    if end > size:
        raise ModelUnavailable(f"{path}: truncated ({size} bytes where its header needs {end}); download it again")


def _gguf_tensors(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    from gguf import GGUFReader

    reader = GGUFReader(path)  # a truncated file fails here (its tensors' data would lie past the end)
    # GGUF lists dimensions innermost first; torch's order is the reverse
    return {t.name: (tuple(int(x) for x in reversed(t.shape.tolist())), t.tensor_type.name) for t in reader.tensors}


def loadable(cls) -> bool:
    """Whether diffusers can read a single file into ``cls`` (it has a key converter for it)."""
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    return cls.__name__ in SINGLE_FILE_LOADABLE_CLASSES and hasattr(cls, "from_single_file")


def check(cls, info: FileInfo, base: Path, subfolder: str) -> None:
    """Refuse, before anything loads, a file that is not ``cls`` as the base model's ``subfolder`` config builds
    it: a LoRA, another family's weights, or another size (ModelUnavailable naming the file and what it holds)."""
    import torch
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    names = list(info.tensors)
    if any(mark in n for n in names for mark in LORA_MARKS):
        raise ModelUnavailable(f"{info.path}: a LoRA adapter, not a {subfolder}'s weights; give it with --lora")
    if not loadable(cls):
        raise ModelUnavailable(f"{info.path}: t2v cannot read a {cls.__name__} ({subfolder}) from a single file; "
                               f"give a diffusers folder instead")
    from diffusers.loaders.single_file_model import _should_convert_state_dict_to_diffusers as converts

    config = cls.load_config(base, subfolder=subfolder)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in cls.from_config(config).state_dict().items()}
    meta = {n: torch.empty(shape, dtype=torch.float32, device="meta") for n, (shape, t) in info.tensors.items()
            if not n.endswith(tuple("." + k for k in SCALE_KEYS + DROPPED)) and n not in DROPPED}
    convert = SINGLE_FILE_LOADABLE_CLASSES[cls.__name__]["checkpoint_mapping_fn"]
    try:  # as from_single_file does: a file with exactly the model's names is taken as it is
        converted = convert(checkpoint=dict(meta), config=config) if converts(expected, meta) else meta
    except Exception as e:  # noqa: BLE001 - the converter met keys it does not know: another model's file
        raise ModelUnavailable(f"{info.path}: does not hold a {cls.__name__} ({subfolder}) in a layout t2v reads "
                               f"({type(e).__name__}: {str(e)[:120]})") from None
    got = {k: tuple(v.shape) for k, v in converted.items()}
    missing = [k for k in expected if k not in got]
    if len(missing) > len(expected) // 2:
        raise ModelUnavailable(f"{info.path}: not a {cls.__name__} ({subfolder}) of this model: {len(missing)} of its "
                               f"{len(expected)} tensors are missing (e.g. {missing[0]}); the file holds "
                               f"{', '.join(names[:3])}, ...")
    wrong = [(k, got[k], s) for k, s in expected.items() if k in got and not _same_shape(got[k], s)]
    if wrong:
        k, have, want = next((w for w in wrong if w[0].endswith(".weight") and len(w[2]) >= 2), wrong[0])
        raise ModelUnavailable(f"{info.path}: a {cls.__name__} of another size: {k} is {_dims(have)} there and "
                               f"{_dims(want)} in {base / subfolder} ({len(wrong)} tensors differ)")
    if missing:
        raise ModelUnavailable(f"{info.path}: {len(missing)} of the {len(expected)} tensors of {cls.__name__} are "
                               f"missing (e.g. {missing[0]})")


def _same_shape(have: tuple, want: tuple) -> bool:
    return have == want or math.prod(have) == math.prod(want) and len(have) != len(want)  # a 1x1 conv kept as linear


def _dims(shape: tuple) -> str:
    return "x".join(str(d) for d in shape) or "a scalar"


def load(cls, info: FileInfo, base: Path, subfolder: str, dtype):
    """``cls`` with the weights of ``info.path`` and the config of ``base/subfolder``, its floating weights in
    ``dtype`` (a GGUF file's stay quantized and compute in ``dtype``). Float8 scales are applied as it loads."""
    config = dict(config=str(base), subfolder=subfolder, local_files_only=True, torch_dtype=dtype)
    if info.format == "gguf":
        from diffusers import GGUFQuantizationConfig

        return cls.from_single_file(str(info.path), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype), **config)
    return cls.from_single_file(state_dict(info, dtype), **config)


def state_dict(info: FileInfo, dtype) -> dict[str, Any]:
    """The tensors of a safetensors file (views of its map where no conversion is needed), float8 weights
    with scales multiplied out into ``dtype``, scale and marker tensors dropped."""
    import torch
    from safetensors import safe_open

    out: dict[str, Any] = {}
    with safe_open(str(info.path), framework="pt") as f:
        names = list(f.keys())
        scales = {n.rsplit(".", 1)[0]: n for n in names if n.rsplit(".", 1)[-1] in SCALE_KEYS}
        for name in names:
            stem, _, leaf = name.rpartition(".")
            if leaf in SCALE_KEYS or leaf in DROPPED or name in DROPPED:
                continue
            t = f.get_tensor(name)
            if leaf == "weight" and stem in scales:
                t = (t.to(torch.float32) * f.get_tensor(scales[stem]).to(torch.float32)).to(dtype)
            elif t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
                t = t.to(dtype)
            out[name] = t
    return out

