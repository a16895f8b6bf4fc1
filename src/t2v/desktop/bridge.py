"""Work off the Tk thread: network calls and decoding run in worker threads, and their results come back to
the Tk thread through ``after()`` (a queue the Tk thread drains every few milliseconds).

Tk is only ever touched from the thread that runs its main loop, and a worker never even holds a reference to
a Tk object: the callbacks stay on the Tk side, keyed by task number, and workers only see the function they
run (which must not hold widgets) and the queue. Otherwise a worker could drop the last reference to a widget
and Tcl would be torn down from the wrong thread."""

from __future__ import annotations

import itertools
import logging
import queue
import sys
import threading
from typing import Any, Callable, Iterable

logger = logging.getLogger(__name__)

Handler = Callable[[Any], Any]


def _work(inbox: queue.SimpleQueue, task: int, fn: Callable[..., Any], args: tuple) -> None:
    try:
        result = fn(*args)
    except Exception as e:  # handed to the window, never a traceback on stderr
        inbox.put((task, "failed", e))
    else:
        inbox.put((task, "done", result))


def _consume(inbox: queue.SimpleQueue, task: int, fn: Callable[[], Iterable[Any]], stop: threading.Event) -> None:
    def items() -> None:
        for x in fn():
            if stop.is_set():
                return
            inbox.put((task, "item", x))

    _work(inbox, task, items, ())


class Bridge:
    """``run(fn, ..., done=, failed=)``: ``fn`` in a worker thread, then ``done(result)`` or ``failed(exc)`` in
    the Tk thread. ``stream(fn, item=...)``: each item of the iterable ``fn()`` returns goes to ``item``, until
    ``stop`` is set."""

    def __init__(self, root, *, interval_ms: int = 30) -> None:
        self.root, self.interval_ms = root, interval_ms
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.handlers: dict[int, tuple[Handler | None, Handler | None, Handler | None]] = {}
        self.ids = itertools.count()
        self.closed = False
        self.after_id = root.after(interval_ms, self.pump)

    @property
    def pending(self) -> int:
        return len(self.handlers)

    def run(self, fn: Callable[..., Any], *args: Any, done: Handler | None = None,
            failed: Handler | None = None) -> None:
        task = next(self.ids)
        self.handlers[task] = (done, failed, None)
        self.start(_work, task, fn, args)

    def stream(self, fn: Callable[[], Iterable[Any]], *, item: Handler, done: Handler | None = None,
               failed: Handler | None = None, stop: threading.Event | None = None) -> threading.Event:
        """Iterate ``fn()`` in a worker; ``item(x)`` for each x in the Tk thread, then ``done(None)``. Returns
        the event that stops it (checked between items)."""
        stop = stop or threading.Event()
        task = next(self.ids)
        self.handlers[task] = (done, failed, item)
        self.start(_consume, task, fn, stop)
        return stop

    def start(self, target: Callable[..., None], task: int, *args: Any) -> None:
        """A daemon thread per task (tasks are a user's clicks, a few at a time; a stream may block on the
        network, and must not keep the process alive after the window closes)."""
        threading.Thread(target=target, args=(self.inbox, task, *args), name=f"t2v-desktop-{task}", daemon=True).start()

    def pump(self) -> None:
        """Run what the workers handed back (Tk thread), then come back in ``interval_ms``."""
        while True:
            try:
                task, kind, value = self.inbox.get_nowait()
            except queue.Empty:
                break
            done, failed, item = self.handlers.get(task, (None, None, None))
            if kind != "item":
                self.handlers.pop(task, None)
            handler = {"item": item, "done": done, "failed": failed}[kind]
            try:
                if handler is not None:
                    handler(value)
                elif kind == "failed":
                    logger.error("background task failed", exc_info=value)
            except Exception:  # one failing callback must not stop the pump
                self.root.report_callback_exception(*sys.exc_info())
        if not self.closed:
            self.after_id = self.root.after(self.interval_ms, self.pump)

    def close(self) -> None:
        self.closed = True
        self.handlers.clear()
        try:
            self.root.after_cancel(self.after_id)
        except Exception:  # the window is already gone
            pass
