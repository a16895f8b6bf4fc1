"""Reading safetensors files a chunk at a time: headers, the stored tensors in file order, and a file's tensors
converted to another dtype without the stored weights adding up in memory."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Callable, Iterator

SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                      "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
                      "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_CHUNK_BYTES = 8 << 20  # mapped pages held at a time while converting


def read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(offset of the data, {name: {"dtype", "shape", "data_offsets"}}) of a safetensors file."""
    with open(path, "rb") as f:
        first = f.read(8)
        n = struct.unpack("<Q", first)[0] if len(first) == 8 else -1
        if not 0 < n <= os.fstat(f.fileno()).st_size - 8:
            raise OSError(f"{path}: not a safetensors file (its header size is {n})")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def stored_chunks(path: Path, names: set[str] | None = None) -> Iterator[tuple[str, dict[str, Any], Any, int, Any]]:
    """Walk a safetensors file's tensors (those in ``names``, default all) in file order, ``_CHUNK_BYTES`` at a
    time: yields (name, header entry, stored dtype, first element, chunk), the chunk a tensor over the file's
    private map. Once the consumer is done with it (at the next step), the chunk's pages are dropped from the
    process (``MADV_DONTNEED``), so the file never adds up in RSS. A tensor with no elements yields nothing."""
    import mmap

    import torch

    start, header = read_header(path)
    drop = getattr(mmap, "MADV_DONTNEED", None)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as mm:
        for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            if names is not None and name not in names:
                continue
            src = getattr(torch, SAFETENSORS_DTYPES[entry["dtype"]])
            numel = math.prod(entry["shape"])
            begin, end = start + entry["data_offsets"][0], start + entry["data_offsets"][1]
            if end - begin != numel * src.itemsize or end > len(mm):
                raise OSError(f"{path}: {name} does not match its stored size (a damaged safetensors file?)")
            step = _CHUNK_BYTES // src.itemsize
            for i in range(0, numel, step):
                j = min(numel, i + step)
                offset = begin + i * src.itemsize
                yield name, entry, src, i, torch.frombuffer(mm, dtype=src, count=j - i, offset=offset)
                if drop is not None:
                    page = offset - offset % mmap.PAGESIZE
                    mm.madvise(drop, page, offset + (j - i) * src.itemsize - page)


def read_converted(path: Path, dtype_for: Callable[[str, Any], Any], names: set[str] | None = None) -> dict[str, Any]:
    """The tensors of a safetensors file (those in ``names``, default all), each in ``dtype_for(name, stored
    dtype)``, copied from the file's map a chunk at a time (:func:`stored_chunks`), so the stored weights
    never add up in RSS beside the converted ones."""
    import torch

    out: dict[str, Any] = {}
    _, header = read_header(path)
    for name, entry in header.items():  # every tensor, those with no elements too
        if names is None or name in names:
            src = getattr(torch, SAFETENSORS_DTYPES[entry["dtype"]])
            out[name] = torch.empty(entry["shape"], dtype=dtype_for(name, src))
    for name, _, _, i, chunk in stored_chunks(path, names):
        out[name].view(-1)[i:i + chunk.numel()].copy_(chunk)
    return out
