"""Progress events with the time a run has left.

:class:`ProgressEmitter` turns a run's stage and step reports into :class:`t2v.requests.ProgressEvent` s with the
elapsed time and an ETA: the denoising steps still to run plus the decodes still to come, while denoising and
while decoding. Before anything is measured it is the planner's predicted times (:mod:`t2v.planner.steptime`:
learned from this machine's earlier runs of the model, else estimated), so a run shows an ETA from the start of
its first step; each step run moves the step time toward what this run measures, and the decode prediction by
the same ratio (a machine busier than usual is slower at both). Without a prediction (a run that planned no
memory, a library call without a progress callback) the ETA is the steps left at this run's measured rate, as
before.

The emitter is also the run's one stopwatch: each stage starts when it is announced (a progress event, or a
:meth:`ProgressEmitter.mark` for the stages progress does not show: ``imports``, ``plan``, ``dry_run``) and lasts
until the next one starts, so the stages of :meth:`ProgressEmitter.timings` add up to the run's ``total_s``. Work
that runs beside a stage (in a thread) is noted with :meth:`ProgressEmitter.beside`, on a key of its own that the
sum leaves out. :func:`stage` marks a stage of the run in progress from code that is handed no emitter (the
planner's dry run); :func:`carve` moves time already spent in the current stage to one of its own (a compile
found to have happened inside a denoising step).
"""

from __future__ import annotations

import contextvars
import math
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from t2v.requests import ProgressEvent

BESIDE = "_beside_s"  # the ending of a timing key of work that ran beside the stages (not part of their sum)
KEYS = {"export": "encode_s"}  # record keys that are not the stage's name + "_s"
ALWAYS = ("load_s",)  # in every record, 0.0 when the model came from the cache
_ACTIVE: contextvars.ContextVar["ProgressEmitter | None"] = contextvars.ContextVar("t2v_run_emitter", default=None)


def stage_times(timings: dict) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """A record's ``timings`` read back: the stages on the run's path as (name, seconds) in the record's order
    (they add up to ``total_s``), and the work that ran beside them (an overlapped hash or encode), each as
    (name, seconds). ``encode_s`` reads as ``encode``; ``total_s`` is in neither list."""
    stages, beside = [], []
    for key, value in timings.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or key == "total_s" or not key.endswith("_s"):
            continue
        if key.endswith(BESIDE):
            beside.append((key[: -len(BESIDE)], float(value)))
        else:
            stages.append((key[:-2], float(value)))
    return stages, beside


def timing_key(stage: str) -> str:
    """The record's ``timings`` key of ``stage`` (``export`` is ``encode_s``, every other stage its name + ``_s``)."""
    return KEYS.get(stage, f"{stage}_s")


def critical_path(timings: dict[str, float]) -> float:
    """The seconds of a record's stages on the critical path: every key but ``total_s`` and work beside them
    (they add up to ``total_s``)."""
    return sum(v for k, v in timings.items() if k != "total_s" and not k.endswith(BESIDE)
               and isinstance(v, (int, float)))


def carve(name: str, seconds: float) -> None:
    """``seconds`` just spent inside the current stage of the run in progress in this thread were ``name``'s (a
    compile inside the first denoising step): moved to a stage of their own, so the stages still add up."""
    emit = _ACTIVE.get()
    if emit is not None and seconds > 0:
        emit.carve(name, seconds)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Inside the block, the run in progress in this thread (if any) is in stage ``name``; after it, back in the
    stage it was in. Code that is handed no emitter marks its stages this way (the planner's dry run)."""
    emit = _ACTIVE.get()
    if emit is None:
        yield
        return
    outer = emit.current
    emit.mark(name)
    try:
        yield
    finally:
        emit.mark(outer or name)

# How many measured steps a prediction is worth: one for an estimate, which may be off by 2x on a small model,
# more once it has been learned from earlier runs (the first measured step also pays for page-ins and warm-up).
ESTIMATE_WEIGHT = 1.0
LEARNED_WEIGHT = 3.0


class ProgressEmitter:
    """Callable as ``emit(stage, step=0, total=0, message="")``.

    ``step``/``total`` of ``denoise`` events count the run's steps (a long video's across its segments); the
    first ``denoise`` event of a stretch of steps may start at a step above 0 (a resumed run)."""

    def __init__(self, on_progress: Callable[[ProgressEvent], None] | None, t_start: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.on_progress, self.t_start, self.clock = on_progress, t_start, clock
        self.step_s: float | None = None  # predicted seconds per step and per decode
        self.decode_s: float | None = None
        self.weight = ESTIMATE_WEIGHT
        self.decodes = 1  # decodes this run makes (a long video: one per segment left)
        self._stage: str | None = None
        self._t = t_start  # when the last event came
        self._step = self._total = 0
        self._stepped = 0  # steps this run has timed after the first stretch, and the seconds they took
        self._stepping_s = 0.0
        self._warm: tuple[int, float] | None = None  # the first stretch of steps timed (warm-up in it)
        self._decodes_started = 0
        self._decoded, self._decoding_s = 0, 0.0  # decodes finished and their seconds
        self._decode_t = 0.0
        self.spent: dict[str, float] = {}  # seconds per stage, in the order they first ran
        self.beside_s: dict[str, float] = {}  # seconds of work beside the stages, by key
        self.current: str | None = "plan"  # the stage the clock is in (a run starts by planning)
        self._mark_t = t_start
        self._lap: dict[str, float] = {}  # the timings at the last lap

    def activate(self) -> None:
        """Make this the run in progress in this thread, for :func:`stage`."""
        _ACTIVE.set(self)

    def mark(self, stage: str, now: float | None = None) -> None:
        """``stage`` starts now: the time since the last stage started is that stage's."""
        now = self.clock() if now is None else now
        if self.current is not None:
            self.spent[self.current] = self.spent.get(self.current, 0.0) + now - self._mark_t
        self.current, self._mark_t = stage, now

    def carve(self, stage: str, seconds: float) -> None:
        """``seconds`` of the current stage so far were ``stage``'s: they move to it (at most the time the current
        stage has run)."""
        seconds = min(seconds, self.clock() - self._mark_t)
        if seconds > 0 and self.current is not None:
            self.spent[stage] = self.spent.get(stage, 0.0) + seconds
            self._mark_t += seconds

    def relabel(self, stage: str) -> None:
        """The stage running now is ``stage`` after all (a load that found the model cached is planning)."""
        self.current = stage

    def beside(self, name: str, seconds: float) -> None:
        """``seconds`` of work ``name`` that ran beside the stages (a thread): its own key, not in their sum."""
        key = f"{name}{BESIDE}"
        self.beside_s[key] = self.beside_s.get(key, 0.0) + seconds

    def lap(self) -> dict[str, float]:
        """:meth:`timings` since the last lap (the first: since the run started): one of several outputs' share
        (image mode's images), whose stages add up to its own ``total_s``."""
        now = self.timings()
        last, self._lap = self._lap, now
        return {k: v - last.get(k, 0.0) for k, v in now.items()}

    def timings(self) -> dict[str, float]:
        """Seconds per stage until now (by record key, :func:`timing_key`), ``total_s`` (since the run started: the
        stages add up to it) and the work beside the stages."""
        now = self.clock()
        spent = dict(self.spent)
        if self.current is not None and self.current != "done":
            spent[self.current] = spent.get(self.current, 0.0) + now - self._mark_t
        out = dict.fromkeys(ALWAYS, 0.0)
        for name, seconds in spent.items():
            if name != "done":
                out[timing_key(name)] = out.get(timing_key(name), 0.0) + seconds
        return {**out, "total_s": now - self.t_start, **self.beside_s}

    @property
    def wanted(self) -> bool:
        """Whether anybody listens (a prediction is only worth making then)."""
        return self.on_progress is not None

    def expect(self, step_s: float, decode_s: float, *, learned: bool = False, decodes: int = 1) -> None:
        """The predicted seconds per denoising step and per decode (NaN or <= 0: none), and how many decodes."""
        good = [x if math.isfinite(x) and x > 0 else None for x in (step_s, decode_s)]
        self.step_s, self.decode_s = good
        self.weight = LEARNED_WEIGHT if learned else ESTIMATE_WEIGHT
        self.decodes = max(1, decodes)

    def __call__(self, stage: str, step: int = 0, total: int = 0, message: str = "", *, timed: bool = True) -> None:
        """Report ``stage`` (and start it on the stopwatch; ``timed=False``: report it only, the runner marks when
        it starts)."""
        now = self.clock()
        if timed and stage != self.current:
            self.mark(stage, now)
        if self.on_progress is None:
            return
        self._observe(stage, step, total, now)
        self.on_progress(ProgressEvent(stage=stage, step=step, total=total, elapsed_s=now - self.t_start,
                                       eta_s=self.eta(now), message=message))

    def _observe(self, stage: str, step: int, total: int, now: float) -> None:
        if self._stage == "decode" and stage != "decode":
            self._decoded += 1
            self._decoding_s += now - self._decode_t
        if stage == "denoise":
            if self._stage == "denoise" and step > self._step:  # steps run since the last event
                if self._warm is None:  # the first stretch pays for warm-up: kept apart (see rate)
                    self._warm = (step - self._step, now - self._t)
                else:
                    self._stepped += step - self._step
                    self._stepping_s += now - self._t
            self._step = step
            if total:
                self._total = total
        elif stage == "decode" and self._stage != "decode":
            self._decodes_started += 1
            self._decode_t = now
        self._stage, self._t = stage, now

    def rate(self) -> float | None:
        """Seconds per step: the prediction, moved toward this run's measured steps. The first stretch timed
        (which also pays for page-ins, allocator and kernel warm-up) counts only while nothing else is known, so
        the ETA does not jump up at the first step and fall back over the next few."""
        stepped, seconds = self._stepped, self._stepping_s
        if not stepped and self.step_s is None and self._warm is not None:
            stepped, seconds = self._warm
        if self.step_s is not None:
            return (self.step_s * self.weight + seconds) / (self.weight + stepped)
        return seconds / stepped if stepped else None

    def decode_each(self) -> float | None:
        """Seconds per decode: this run's own when it has decoded, else the prediction scaled as the steps were."""
        if self._decoded:
            return self._decoding_s / self._decoded
        if self.decode_s is None:
            return None
        rate = self.rate()
        return self.decode_s * (rate / self.step_s if rate is not None and self.step_s else 1.0)

    def eta(self, now: float) -> float | None:
        """Seconds left of denoising and decoding, in the denoise and decode stages and between a long video's
        segments (None elsewhere, or when
        the step count or the step time is not known yet; a run with no steps, video-to-video at strength 0,
        has its decode's)."""
        if self._stage == "encode_prompt" and self._total:  # a long video's next segment: as between steps
            pass
        elif self._stage not in ("denoise", "decode") or (self._stage == "denoise" and not self._total):
            return None
        rate, each = self.rate(), self.decode_each()
        steps_left = max(self._total - self._step, 0)
        if steps_left and rate is None:
            return None
        left = steps_left * (rate or 0.0)
        later = max(self.decodes - self._decodes_started, 0)
        if self._stage == "decode":
            if each is None:
                return left or None
            left += max(each - (now - self._decode_t), 0.0)
        if each is not None:
            left += later * each
        return left
