"""Weights converted to the run's dtype, kept on disk: ``$T2V_HOME/cache/converted/``.

Loading an fp32 (or fp16) checkpoint as bf16 reads every stored byte and converts it
(:func:`t2v.models.precision.read_converted`): for the full-size ModelScope model that is 7.3 GB read and
converted on every load, where an fp32 load only maps the files. The first converting load of a large file
therefore converts it, a chunk at a time, into a safetensors file of its own, and then every load, that one
and later ones in any process, maps that file as an fp32 load maps its own: nothing is read until a step uses
it, nothing is converted, and the process holds the bf16 weights once (file pages, dropped again under
memory pressure). Each tensor starts 64-byte aligned, as fresh tensors do, and every load of the entry,
the first included, uses the same mapped tensors, so runs give the same frames bit for bit.

* **Key**: the source file's SHA-256 (:mod:`t2v.models.hashcache`, computed once and cached, and needed for
  the record's ``model_hash`` anyway) and the dtype of every tensor. A changed file, or another dtype or
  fp32-kept rule, is another entry; nothing is ever read for a file it was not made from.
* **Safety**: an entry is used only when its header names the same tensors, dtypes and shapes, and its
  size adds up; otherwise it is deleted and the load converts again. It is written to a temporary file and
  renamed, so readers and other processes never see half a file; a map is private (copy-on-write), so
  nothing a run does to its weights reaches the file, and replacing or deleting an entry leaves the
  processes that mapped it untouched.
* **Size**: files whose converted tensors are under :data:`MIN_BYTES` are converted each time (faster
  than a second file is worth). A conversion is not kept when the disk would be left with less than the
  entry's size free. Entries not used for :data:`MAX_AGE_S` are deleted when a new one is written. The folder
  may be deleted at any time. ``T2V_CONVERTED_CACHE=0`` turns all of this off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from t2v.models.tensorfiles import SAFETENSORS_DTYPES, read_converted, read_header, stored_chunks
from t2v.runtime import current
from t2v.models.hashcache import file_digests

logger = logging.getLogger(__name__)

FOLDER = "converted"
VERSION = 1
MIN_BYTES = 64 << 20
MAX_AGE_S = 30 * 24 * 3600
ALIGN = 64  # bytes: where each tensor starts in an entry (mapped, as torch's allocator aligns its own)
PAD = "__t2v_pad_"
_NAMES = {v: k for k, v in SAFETENSORS_DTYPES.items()}  # "bfloat16" -> "BF16"


def cache_folder() -> Path | None:
    """``$T2V_HOME/cache/converted``; None when it is turned off or the settings cannot be read."""
    try:
        settings = current().settings
    except Exception as e:  # invalid T2V_* values: convert, uncached
        logger.debug("no converted-weights cache: %s", e)
        return None
    return settings.home / "cache" / FOLDER if settings.converted_cache else None


def converted_tensors(path: Path, dtype_for: Callable[[str, Any], Any]) -> dict[str, Any]:
    """What ``read_converted(path, dtype_for)`` returns: for a large file, views of the cache entry made when
    this file was first converted to these dtypes (made now if there is none)."""
    import torch

    folder = cache_folder()
    _, header = read_header(path)
    want = {name: (dtype_for(name, getattr(torch, SAFETENSORS_DTYPES[e["dtype"]])), list(e["shape"]))
            for name, e in header.items()}
    size = sum(dtype.itemsize * math.prod(shape) for dtype, shape in want.values())
    if folder is None or size < MIN_BYTES:
        return read_converted(path, dtype_for)
    target = folder / f"{entry_key(path, want)}.safetensors"
    if target.is_file():
        tensors = map_entry(target, want)
        if tensors is not None:
            _touch(target)
            logger.info("%s: mapped as converted before, from %s", path.name, target)
            return tensors
        logger.warning("%s does not hold what its name says (damaged?); converting again", target)
        _unlink(target)
    if write(target, path, header, want, size):
        mapped = map_entry(target, want)  # the entry's pages, as every later load will use them
        if mapped is not None:
            return mapped
    return read_converted(path, dtype_for)


def map_entry(path: Path, want: dict[str, tuple[Any, list[int]]]) -> dict[str, Any] | None:
    """The tensors of a cache entry as views of a private (copy-on-write) map of it, read only when used;
    None unless it holds exactly the tensors, dtypes and shapes of ``want`` and its size adds up."""
    import mmap

    import torch

    try:
        start, header = read_header(path)
        size = path.stat().st_size
        names = {n for n in header if not n.startswith(PAD)}
        if names != set(want) or start + max((int(e["data_offsets"][1]) for e in header.values()), default=0) != size:
            return None
        for name, (dtype, shape) in want.items():
            e = header[name]
            begin, end = (int(x) for x in e["data_offsets"])
            if (SAFETENSORS_DTYPES.get(e["dtype"]) != str(dtype).removeprefix("torch.") or list(e["shape"]) != shape
                    or end - begin != dtype.itemsize * math.prod(shape)):
                return None
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    out = {}
    for name, (dtype, shape) in want.items():
        n = math.prod(shape)
        offset = start + int(header[name]["data_offsets"][0])
        out[name] = (torch.frombuffer(mm, dtype=dtype, count=n, offset=offset) if n else torch.empty(0, dtype=dtype)
                     ).view(shape)
    return out


def entry_key(path: Path, want: dict[str, tuple[Any, list[int]]]) -> str:
    """The cache entry's name: the source file's content digest and the dtype of every tensor."""
    spec = {"version": VERSION, "source": file_digests([path])[0],
            "tensors": {name: str(dtype).removeprefix("torch.") for name, (dtype, _) in sorted(want.items())}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:40]


def write(target: Path, source: Path, stored: dict[str, Any], want: dict[str, tuple[Any, list[int]]],
          size: int) -> bool:
    """Convert ``source``'s tensors (``stored``: its header) to ``want``'s dtypes straight into a safetensors
    file at ``target`` (temp file + rename), a chunk at a time (:func:`t2v.models.precision.stored_chunks`:
    neither the stored nor the converted weights add up in memory); False, and only logged, when there is no
    room or it cannot be written."""
    import torch

    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(target.parent).free < 2 * size:
            logger.info("not keeping the converted %s: under %d MB free in %s", source.name, 2 * size >> 20,
                        target.parent)
            return False
        entries, offset = {}, 0
        for name in sorted(want, key=lambda n: stored[n]["data_offsets"][0]):  # the source's order
            if offset % ALIGN:  # a U8 filler keeps every tensor 64-byte aligned and the file valid safetensors
                pad = ALIGN - offset % ALIGN
                entries[f"{PAD}{len(entries)}"] = {"dtype": "U8", "shape": [pad], "data_offsets": [offset, offset + pad]}
                offset += pad
            dtype, shape = want[name]
            n = dtype.itemsize * math.prod(shape)
            entries[name] = {"dtype": _NAMES[str(dtype).removeprefix("torch.")], "shape": shape,
                             "data_offsets": [offset, offset + n]}
            offset += n
        head = json.dumps({"__metadata__": {"format": "pt", "t2v_converted_from": str(source)}, **entries},
                          separators=(",", ":")).encode()
        head += b" " * (-(8 + len(head)) % ALIGN)  # the data starts aligned too
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(len(head).to_bytes(8, "little") + head)
            for name, _, _, i, chunk in stored_chunks(source, set(want)):
                begin = 8 + len(head) + entries[name]["data_offsets"][0]
                if i == 0 and f.tell() < begin:
                    f.write(bytes(begin - f.tell()))  # the filler before this tensor
                f.write(memoryview(chunk.to(want[name][0]).view(torch.uint8).numpy()))
            f.write(bytes(8 + len(head) + offset - f.tell()))  # a filler after the last tensor, if any
        os.replace(tmp, target)
        tmp = None
        logger.info("kept the converted %s in %s", source.name, target)
        prune(target.parent, keep=target)
        return True
    except (OSError, KeyError, RuntimeError) as e:  # KeyError: a dtype safetensors has no name for
        logger.warning("could not keep the converted %s: %s", source.name, e)
        return False
    finally:
        if tmp is not None:
            _unlink(Path(tmp))


def prune(folder: Path, *, keep: Path | None = None, max_age_s: float = MAX_AGE_S) -> list[Path]:
    """Delete entries (and stray temp files) not used for ``max_age_s``; the paths deleted."""
    cutoff, gone = time.time() - max_age_s, []
    for p in folder.iterdir():
        try:
            if p != keep and p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                gone.append(p)
        except OSError:
            pass
    return gone


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
