"""Progress events with the time a run has left.

:class:`ProgressEmitter` turns a run's stage and step reports into :class:`t2v.requests.ProgressEvent` s with the
elapsed time and an ETA: the denoising steps still to run plus the decodes still to come, while denoising and
while decoding. Before anything is measured it is the planner's predicted times (:mod:`t2v.planner.steptime`:
learned from this machine's earlier runs of the model, else estimated), so a run shows an ETA from the start of
its first step; each step run moves the step time toward what this run measures, and the decode prediction by
the same ratio (a machine busier than usual is slower at both). Without a prediction (a run that planned no
memory, a library call without a progress callback) the ETA is the steps left at this run's measured rate, as
before.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from t2v.requests import ProgressEvent

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

    def __call__(self, stage: str, step: int = 0, total: int = 0, message: str = "") -> None:
        if self.on_progress is None:
            return
        now = self.clock()
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
