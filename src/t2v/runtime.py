"""The process's runtime: one object that owns the settings the core runs with and every cache it keeps between
runs (loaded models, dry runs, file digests, compiled kernels, the planner's baseline).

The core's modules keep no caches of their own: each asks a :class:`Runtime` for its cache by name, building it
on first use with a factory that receives the runtime (and so its settings). A process has one current runtime
(:func:`current`); a server or worker installs its own, built from the settings it was started with
(:func:`install`), and a test or a library caller can run a block under a fresh one (:func:`using`): a fresh
runtime is what a fresh process would see, and nothing cached under another leaks into it.

A runtime built without settings reads them from the environment each time they are asked for (``T2V_*``),
which is what the command line and one-off library calls want.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from t2v.settings import Settings, get_settings

T = TypeVar("T")
_SETTINGS_ENV = ("HOME", "XDG_DATA_HOME")  # besides T2V_*: where the default home lies


class Runtime:
    """Settings plus named caches. Caches are built lazily, once, under a lock; each has ``clear()`` and, for
    :meth:`sizes`, ``len()``."""

    def __init__(self, settings: Settings | None = None):
        self._settings = settings
        self._from_env: tuple[tuple, Settings] | None = None
        self._caches: dict[str, Any] = {}
        self._lock = threading.RLock()

    @property
    def settings(self) -> Settings:
        """The settings this runtime was built with, else the environment's as they are now (built again only
        when a variable they read has changed since the last call)."""
        if self._settings is not None:
            return self._settings
        snapshot = tuple(sorted((k, v) for k, v in os.environ.items()
                                if k.upper().startswith("T2V_") or k in _SETTINGS_ENV))
        last = self._from_env
        if last is not None and last[0] == snapshot:
            return last[1]
        built = get_settings()
        self._from_env = (snapshot, built)
        return built

    def cache(self, name: str, factory: Callable[["Runtime"], T]) -> T:
        """The cache called ``name``, made by ``factory(self)`` the first time it is asked for."""
        with self._lock:
            found = self._caches.get(name)
            if found is None:
                found = self._caches[name] = factory(self)
            return found

    def clear(self, *names: str) -> None:
        """Empty the named caches (all of them when none is named); they stay owned by this runtime."""
        with self._lock:
            for name, found in self._caches.items():
                if not names or name in names:
                    found.clear()

    def sizes(self) -> dict[str, int]:
        """Entries per cache (for diagnostics and tests)."""
        with self._lock:
            return {name: len(found) for name, found in self._caches.items() if hasattr(found, "__len__")}


class Memo:
    """A bounded memo (least recently used out first), safe across threads: what :func:`memoized` keeps."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.entries: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)


_MISSING = object()


def memoized(name: str, maxsize: int = 32) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Like :func:`functools.lru_cache` (positional, hashable arguments), but the results live in the current
    runtime's cache ``name``: a fresh runtime computes them again. ``f.cache_clear()`` empties the current
    runtime's."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def inner(*args: Any) -> T:
            memo = current().cache(name, lambda runtime: Memo(maxsize))
            with memo.lock:
                found = memo.entries.get(args, _MISSING)
                if found is not _MISSING:
                    memo.entries.move_to_end(args)
                    return found
            value = fn(*args)
            with memo.lock:
                memo.entries[args] = value
                while len(memo.entries) > memo.maxsize:
                    memo.entries.popitem(last=False)
            return value

        inner.cache_clear = lambda: current().clear(name)  # type: ignore[attr-defined]
        return inner

    return wrap


_current = Runtime()
_current_lock = threading.Lock()


def current() -> Runtime:
    """The process's runtime."""
    return _current


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the process's (a server or worker does this once, with its settings); returns the one it
    replaced."""
    global _current
    with _current_lock:
        previous, _current = _current, runtime
    return previous


@contextmanager
def using(runtime: Runtime | None = None) -> Iterator[Runtime]:
    """Run a block under ``runtime`` (a fresh one by default), then put the previous one back."""
    runtime = runtime if runtime is not None else Runtime()
    previous = install(runtime)
    try:
        yield runtime
    finally:
        install(previous)
