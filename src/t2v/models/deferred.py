"""Components loaded on first use: a model's text side (tokenizer, text encoder) waits until a run needs it.

With the prompt cache (:mod:`t2v.sampling.promptcache`) a run whose prompt was encoded before never asks for
its text encoder, so a fresh process neither reads those weights nor imports their library's model classes.
A :class:`Deferred` loads once, under a lock, and every copy of the model shares what it loaded;
:class:`Components` is the dict a :class:`~t2v.models.loader.LoadedModel` holds, resolving a deferred entry
when it is read by name.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Callable, Iterator


class Deferred:
    """A component that ``load()`` builds the first time it is asked for."""

    def __init__(self, name: str, load: Callable[[], Any]):
        self.name = name
        self._load: Callable[[], Any] | None = load
        self._value: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._load is None

    def get(self) -> Any:
        with self._lock:
            if self._load is not None:
                self._value = self._load()
                self._load = None
            return self._value

    def peek(self) -> Any:
        """The component if it was loaded, else None (loads nothing)."""
        return self._value

    def __repr__(self) -> str:
        return f"Deferred({self.name!r}, {'loaded' if self.loaded else 'not loaded'})"


class Components(dict):
    """Components by name; a :class:`Deferred` entry is loaded when read by name (``c["text_encoder"]``,
    ``c.get(...)``) and kept in this dict. A fast tokenizer is copied for each dict that reads it: a call with
    padding sets state on the tokenizer, so two runs in two threads must not share one."""

    def __getitem__(self, name: str) -> Any:
        value = dict.__getitem__(self, name)
        if isinstance(value, Deferred):
            value = value.get()
            if hasattr(value, "backend_tokenizer"):
                value = copy.deepcopy(value)
            dict.__setitem__(self, name, value)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def modules(self) -> Iterator[Any]:
        """The components loaded so far (a deferred one only once loaded), without loading any."""
        for value in dict.values(self):
            value = value.peek() if isinstance(value, Deferred) else value
            if value is not None:
                yield value

    def load_all(self) -> None:
        """Load every deferred component now (a server warming its model)."""
        for name in list(self):
            self[name]
