"""Prompt embeddings kept on disk, so a run whose prompt was encoded before loads no text encoder at all.

A family encodes its prompts through :func:`encoded`: the embeddings are looked up under
``$T2V_HOME/cache/prompts`` by a key over the model's content hash (weight formats included), its LoRA and
its scale, the family, the device and dtype, the versions of t2v, torch and transformers, the caller's scope,
and what the family says shapes the result (the prompt, the negative prompt, token counts). On a hit the stored tensors are
returned as they were computed (bitwise: the same frames follow) with the warnings the encode gave; the text
encoder, which the loader defers (:class:`t2v.models.deferred.Deferred`), is then never loaded, and its
library's model classes are never imported. On a miss the encode runs and its result is stored.

``T2V_PROMPT_CACHE_MB`` bounds the folder (least recently used files go first; 0 turns the cache off). A
server runs each job under :func:`scope` with its key, so one key's prompts never come from another key's
entries (a hit shows in the record's ``encode_prompt_s``). The files are a cache: a missing, unreadable or
damaged one only means encoding again, and ``t2v cache clear prompts`` empties it.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from safetensors import safe_open

from t2v.models.caches import root
from t2v.runtime import current

logger = logging.getLogger(__name__)

T = TypeVar("T")
FOLDER = "prompts"
_VERSION = 1
_SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("t2v_prompt_cache_scope", default="")


@contextmanager
def scope(name: str | None) -> Iterator[None]:
    """Run a block with its own prompt-cache entries (a server passes the job's key id; "" is shared)."""
    token = _SCOPE.set(name or "")
    try:
        yield
    finally:
        _SCOPE.reset(token)


def enabled() -> bool:
    """Whether prompt embeddings are cached (``T2V_PROMPT_CACHE_MB`` above 0)."""
    try:
        return current().settings.prompt_cache_mb > 0
    except Exception:  # unreadable settings: run uncached
        return False


def folder() -> Path:
    return root(current().settings.home) / FOLDER


def _versions() -> str:
    found = current().cache("prompt-cache-versions", lambda runtime: {})
    if not found:
        for name in ("t2v", "torch", "transformers"):
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "?"
    return ",".join(f"{k}={v}" for k, v in sorted(found.items()))


def key(model, parts: dict[str, Any]) -> str:
    """The entry name for ``parts`` (JSON-able) encoded by ``model`` under the current scope."""
    blob = json.dumps({"v": _VERSION, "model": model.content_hash, "adapters": getattr(model, "adapters", ""),
                       "family": model.source.family,
                       "device": model.plan.device, "dtype": model.plan.dtype, "code": _versions(),
                       "scope": _SCOPE.get(), "parts": parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def encoded(model, warnings: list[str], compute: Callable[[], T], **parts: Any) -> T:
    """``compute()`` (a tensor, or a tuple of tensors), or what it gave before for the same ``parts``; the
    warnings it appends to ``warnings`` are stored with it and given again on a hit."""
    if not enabled():
        return compute()
    path = folder() / f"{key(model, parts)}.safetensors"
    found = _read(path, model.plan.device)
    if found is not None:
        value, said = found
        warnings.extend(said)
        logger.debug("prompt embeddings from %s", path.name)
        return value
    before = len(warnings)
    value = compute()
    _write(path, value, warnings[before:])
    return value


def _read(path: Path, device: str) -> tuple[Any, list[str]] | None:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = [f.get_tensor(str(i)) for i in range(int(meta["count"]))]
            said = json.loads(meta.get("warnings", "[]"))
    except FileNotFoundError:
        return None
    except Exception as e:  # damaged or foreign: encode again (and let the write replace it)
        logger.warning("ignoring the prompt cache entry %s: %s", path.name, e)
        _unlink(path)
        return None
    try:
        os.utime(path)  # least recently used goes first
    except OSError:
        pass
    tensors = [t.to(device) for t in tensors]
    return (tensors[0] if meta.get("kind") == "tensor" else tuple(tensors)), [str(w) for w in said]


def _write(path: Path, value: Any, said: list[str]) -> None:
    from safetensors.torch import save_file  # deferred: imports safetensors' torch bindings

    single = not isinstance(value, tuple)
    tensors = [value] if single else list(value)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        save_file({str(i): t.detach().to("cpu").contiguous() for i, t in enumerate(tensors)}, tmp,
                  metadata={"count": str(len(tensors)), "kind": "tensor" if single else "tuple",
                            "warnings": json.dumps(said)})
        os.replace(tmp, path)
        tmp = None
    except OSError as e:  # a cache is never needed
        logger.warning("could not keep the prompt embeddings: %s", e)
    finally:
        if tmp is not None:
            _unlink(Path(tmp))
    trim(path.parent, current().settings.prompt_cache_mb * 2**20)


def trim(where: Path, budget: int) -> None:
    """Delete the least recently used entries of ``where`` while they hold more than ``budget`` bytes."""
    entries = []
    for p in where.glob("*.safetensors"):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= budget:
            break
        _unlink(p)
        total -= size


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
