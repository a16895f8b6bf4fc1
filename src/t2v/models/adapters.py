"""LoRA adapters switched on a loaded model between runs, never fused into it.

A server keeps one copy of a model's base weights. Each adapter a run asks for is loaded once into the modules
it reaches, unfused, under a name made from its file's content; a run then makes its own adapters active at
their strengths (PEFT's ``set_adapter`` and ``set_scale``, what diffusers' ``set_adapters`` does) and every other
one inactive. Two runs that want the same adapters at the same strengths run side by side; a run that wants
another set waits until the model is free, then switches it (loading nothing it already has). An adapter no run
has used for ``idle_s`` seconds is deleted when the next switch comes; with none left, the model's modules are
plain again.

One :class:`AdapterHost` belongs to each cached base model and is shared by every copy made of it::

    with host.use(components, parts, load) as lease:  # parts: the run's AdapterParts; load(module, part, name)
        ...                                           # sample: the modules run with exactly the run's adapters
        lease.switch(parts + stage_two)               # a later stage's set (it waits as a new run would)
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from t2v.errors import InvalidRequest
from t2v.models.hashcache import file_digests

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterPart:
    """One adapter file on one component of a model, at a strength; ``index`` is the request's ``loras`` entry."""

    component: str
    file: Path
    strength: float
    index: int
    field: str = ""  # the request field that brought it, when not ``loras.<index>.path`` (a model's own adapter)

    @property
    def name(self) -> str:
        """The adapter's name in the module: the same file (or adapter folder) has the same name, whichever run
        loads it."""
        files = sorted(p for p in self.file.iterdir() if p.is_file()) if self.file.is_dir() else [self.file]
        return "t2v_" + hashlib.sha256("".join(file_digests(files)).encode()).hexdigest()[:16]


Loader = Callable[[Any, AdapterPart, str], None]  # load(module, part, name): inject the adapter under name


class AdapterHost:
    """The adapters loaded into one base model's modules, and which of them runs now."""

    def __init__(self, idle_s: float = 600.0) -> None:
        self.idle_s = idle_s
        self.cond = threading.Condition()
        self.active: tuple = ()  # the configuration the modules run with: ((component, name, strength), ...)
        self.users = 0  # runs inside use() with the active configuration
        self.wanted: Counter = Counter()  # configurations runs are waiting to switch to
        self.loaded: dict[tuple[str, str], float] = {}  # (component, name) -> when a run last used it
        self.switches = 0  # times the active configuration changed (for benchmarks and tests)

    @contextmanager
    def use(self, components, parts: tuple[AdapterPart, ...], load: Loader) -> Iterator[Lease]:
        """Run the block with ``components``' modules showing exactly ``parts``' adapters at their strengths; the
        :class:`Lease` it gives can switch to another set mid-run (a second stage's LoRA)."""
        lease = Lease(self, components, load)
        lease.join(parts)
        try:
            yield lease
        finally:
            lease.leave()

    def acquire(self, components, parts: tuple[AdapterPart, ...], load: Loader) -> tuple:
        """Wait until the modules may show ``parts`` (joining the runs that use the same set when nobody waits
        for another one), switch them if needed and count this run in; the configuration."""
        config = tuple((p.component, p.name, p.strength) for p in parts)
        with self.cond:
            self.wanted[config] += 1
            try:
                while self.users and not (self.active == config and not self.others_waiting(config)):
                    self.cond.wait()
            finally:
                self.wanted[config] -= 1
                if not self.wanted[config]:
                    del self.wanted[config]
            if self.active != config or not self.users:
                self.switch(components, parts, config, load)
            self.users += 1
        return config

    def release(self, config: tuple) -> None:
        with self.cond:
            self.users -= 1
            now = time.monotonic()
            for component, name, _ in config:
                self.loaded[(component, name)] = now
            self.cond.notify_all()

    def others_waiting(self, config: tuple) -> bool:
        return any(c != config for c in self.wanted)

    def names(self, component: str | None = None) -> list[str]:
        """The adapters loaded now (on ``component``)."""
        return sorted({n for c, n in self.loaded if component in (None, c)})

    def switch(self, components, parts: tuple[AdapterPart, ...], config: tuple, load: Loader) -> None:
        """With no run on the model: load what ``parts`` lack, drop idle adapters, activate ``config``."""
        import torch

        for part in parts:
            key = (part.component, part.name)
            if key in self.loaded:
                continue
            module = components[part.component]
            try:
                with torch.inference_mode(False):  # a stage switching mid-run: its layers are no inference tensors
                    load(module, part, part.name)
            except InvalidRequest:
                self.remove(module, part.name)
                raise
            except (ValueError, KeyError, RuntimeError, OSError) as e:
                self.remove(module, part.name)
                field = part.field or f"loras.{part.index}.path"
                raise InvalidRequest(f"{field}: {part.file.name} does not fit this model's {part.component}: "
                                     f"{str(e)[:200]}", field=field) from None
            self.loaded[key] = time.monotonic()
        self.drop_idle(components, {(c, n) for c, n, _ in config})
        for component in {c for c, _ in self.loaded}:
            activate(components[component], {n: w for c, n, w in config if c == component})
        if config != self.active:
            self.switches += 1
        self.active = config

    def drop_idle(self, components, keep: set) -> None:
        """Delete the adapters no run has used for ``idle_s`` (none in ``keep``); a module left with none is plain."""
        cutoff = time.monotonic() - self.idle_s
        for key in [k for k, used in self.loaded.items() if used <= cutoff and k not in keep]:
            component, name = key
            logger.info("dropping LoRA adapter %s from %s: unused for %.0f s", name, component, self.idle_s)
            del self.loaded[key]
            self.remove(components[component], name)

    def remove(self, module, name: str) -> None:
        """Delete adapter ``name`` from ``module``; with no adapter left there, put the plain layers back."""
        from diffusers.utils.peft_utils import delete_adapter_layers, recurse_remove_peft_layers

        if name in (getattr(module, "peft_config", None) or {}) or has_adapter(module, name):
            delete_adapter_layers(module, name)
            getattr(module, "peft_config", {}).pop(name, None)
        if not has_adapter(module):
            recurse_remove_peft_layers(module)
            for attr in ("peft_config", "_hf_peft_config_loaded"):
                if hasattr(module, attr):
                    delattr(module, attr)


class Lease:
    """One run's hold on an :class:`AdapterHost`: the adapter set its modules show for the run, switched with
    :meth:`switch` (the run lets go of its set, then waits for the new one as a new run would)."""

    def __init__(self, host: AdapterHost, components, load: Loader) -> None:
        self.host, self.components, self.load = host, components, load
        self.config: tuple | None = None

    def join(self, parts: tuple[AdapterPart, ...]) -> None:
        self.config = self.host.acquire(self.components, parts, self.load)

    def leave(self) -> None:
        if self.config is not None:
            config, self.config = self.config, None
            self.host.release(config)

    def switch(self, parts: tuple[AdapterPart, ...]) -> None:
        """Show ``parts`` from now on (e.g. the run's own adapters plus a second stage's)."""
        wanted = tuple((p.component, p.name, p.strength) for p in parts)
        if wanted != self.config:
            self.leave()
            self.join(parts)


def tuner_layers(module) -> Iterator[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return (m for m in module.modules() if isinstance(m, BaseTunerLayer))


def has_adapter(module, name: str | None = None) -> bool:
    """Whether any layer of ``module`` holds adapter ``name`` (any adapter: None)."""
    for layer in tuner_layers(module):
        held = set(getattr(layer, "lora_A", {}) or {}) | set(getattr(layer, "lora_B", {}) or {})
        if (name in held) if name is not None else bool(held):
            return True
    return False


def activate(module, weights: dict[str, float]) -> None:
    """Make ``weights``' adapters (name -> strength) the active ones of ``module``'s LoRA layers, as diffusers'
    ``set_adapters`` does but frozen (inference only); no weights: every layer runs as its base."""
    names = list(weights)
    for layer in tuner_layers(module):
        layer.enable_adapters(bool(names))
        if names:
            layer.set_adapter(names, inference_mode=True)
            for name, strength in weights.items():
                layer.set_scale(name, strength)
