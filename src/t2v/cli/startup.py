"""The ``t2v`` program's garbage collector while a run starts.

Importing torch, diffusers and transformers and loading a model makes millions of Python objects; each time
the collector's thresholds are crossed it walks the growing heap again. Measured on the README's first command
(2-core AMD EPYC): about 1,200 collections taking 0.96 s of a 6 s run, nearly all of them finding nothing to
free. A one-shot ``t2v`` process (:func:`one_shot`, set by the program's entry point) therefore pauses the
collector while a run loads, then freezes what loading made (``gc.freeze``: later collections skip it) and
collects as usual from the first stage after ``load``, so the denoising loop and everything after it run with
the collector on. Library calls, servers and in-process callers keep Python's defaults.
"""

from __future__ import annotations

import gc
_one_shot = False


def one_shot() -> None:
    """This process runs one command, then ends (the ``t2v`` program)."""
    global _one_shot
    _one_shot = True


class LoadingPause:
    """Pauses the collector from :meth:`start` until a progress event past ``load`` (or :meth:`end`)."""

    def __init__(self) -> None:
        self.paused = False

    def start(self) -> None:
        if _one_shot and gc.isenabled():
            gc.disable()
            self.paused = True

    def end(self) -> None:
        if self.paused:
            self.paused = False
            gc.freeze()
            gc.enable()
