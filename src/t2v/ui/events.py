"""What the page's tabs share when handling events (no Gradio import): one error style, a guard that turns
any exception into it, and the loop that watches a job until it ends."""

from __future__ import annotations

import functools
import html
import logging
import time
from typing import Any, Callable, Iterator

import t2v.ui.handlers as H
from t2v.ui.handlers import UIError

logger = logging.getLogger(__name__)


def error_md(e: Exception) -> str:
    """The page's one error line: a UIError's sentence, or for anything else (a bug) one line, logged in full."""
    if isinstance(e, UIError):
        text = str(e)
    else:  # a bug: say what happened in one line, keep the traceback in the server log
        logger.error("UI handler failed", exc_info=e)
        text = f"Something went wrong on the server ({type(e).__name__}: {e}). Details are in the server log."
    return f'<span class="t2v-error">⚠ {html.escape(text)}</span>'


def guarded(status: Any, fn: Callable) -> Callable:
    """``fn`` as an event handler whose errors become :func:`error_md` in the ``status`` component."""

    @functools.wraps(fn)  # keeps the signature: Gradio passes gr.SelectData / gr.Request by annotation
    def run(*args):
        try:
            return fn(*args)
        except Exception as e:  # UIError: the user's to fix; anything else: logged, one line shown
            return {status: error_md(e)}
    return run


def poll(service, job_id: str, token: str | None = None, *, interval: float = 0.3,
         keep_going: Callable[[], bool] = lambda: True,
         view: Callable[..., H.JobView] = H.view) -> Iterator[H.JobView]:
    """``view(service, job_id, token)`` every ``interval`` seconds until the job ends (the last one yielded is
    finished), or until ``keep_going()`` turns false (the page started another job)."""
    while keep_going():
        v = view(service, job_id, token)
        yield v
        if v.finished:
            return
        time.sleep(interval)


__all__ = ["error_md", "guarded", "poll"]
