"""What every command shares: error translation, Ctrl-C handling, consoles."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager, redirect_stdout
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from t2v.extras import missing_extra
from t2v.errors import Cancelled, T2VError
from t2v.progress import stage_times

out = Console()
err = Console(stderr=True)


def quiet_third_party() -> None:
    """Hide the hub/transformers/diffusers progress bars and chatter; t2v draws its own."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Warnings t2v records are shown in the summary; T2V_LOG_LEVEL=DEBUG shows every step.
    level = os.environ.get("T2V_LOG_LEVEL", "ERROR").upper()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("t2v").setLevel(level if level in logging._nameToLevel else "ERROR")
    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


JSON_OUTPUT = typer.Option(False, "--json", help="Print the run's JSON record on stdout, one line (t2v image: one line "
                           "per image), e.g. for `| jq`; progress and messages go to stderr.")


@contextmanager
def stdout_kept_for_json(as_json: bool) -> Iterator[None]:
    """With ``--json``, stdout is the JSON alone: while the command runs, whatever else would go there (a
    library's print, the summary) goes to stderr."""
    if not as_json:
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


def print_json_lines(records: list[dict[str, Any]]) -> None:
    """Each record as one line of JSON on stdout (JSON Lines: ``jq`` and ``json.loads`` per line read it)."""
    for record in records:
        sys.stdout.write(json.dumps(record, default=str) + "\n")  # ASCII: any terminal encoding takes it
    sys.stdout.flush()


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and the documented exit code."""
    try:
        yield
    except Cancelled as e:
        err.print(f"[yellow]interrupted:[/] {escape(str(e))}", highlight=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except T2VError as e:
        raise fail(str(e), e.exit_code) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as e:
        if os.environ.get("T2V_DEBUG"):
            raise
        hint = missing_extra(e)
        if hint:
            raise fail(hint, 2) from None
        raise fail(f"unexpected failure: {type(e).__name__}: {e} (set T2V_DEBUG=1 for a traceback)", 1) from None


class Interrupt:
    """Ctrl-C during denoising asks the engine to stop after the current step; elsewhere it interrupts at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.cancellable = False
        self._old = None

    def __call__(self) -> bool:
        return self.requested.is_set()

    def _handle(self, signum, frame) -> None:
        if self.cancellable and not self.requested.is_set():
            self.requested.set()
            return
        raise KeyboardInterrupt

    def __enter__(self) -> "Interrupt":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def is_tty() -> bool:
    return sys.stderr.isatty()


def print_record(rec: dict, *, where: str = "") -> None:
    """A finished clip's record in a few lines: seed, shape, device and time (``where`` it ran, if not here), a
    longer video's segments, post-processing, warnings."""
    t = rec["timings"]
    out.print(
        f"seed {rec['seed']} · {rec['num_frames']} frames {rec['width']}x{rec['height']} @ {rec['fps']:g} fps · "
        f"{rec['device']}/{rec['dtype']}{where} · {t.get('total_s', 0):.1f}s total", highlight=False
    )
    stages, beside = stage_times(t)
    if stages:  # where the time went: the stages add up to the total
        spent = " + ".join(f"{name} {s:.1f}s" for name, s in stages if s >= 0.05) or "under 0.1s each"
        more = "".join(f" ({name} {s:.1f}s beside)" for name, s in beside if s >= 0.05)
        out.print(f"time: {spent}{more}", highlight=False)
    if (long := rec.get("long")) and long.get("method"):  # made in one run by the model
        parts = [f"{long['seconds']:g} s"] if long.get("seconds") is not None else []
        if clip := long.get("clip"):
            parts.append(f"the clip's {clip['frames']} and {long['new_frames']} new")
        said = f" ({'; '.join(parts)})" if parts else ""
        out.print(f"long video: {long['frames']} frames{said} by {long['method']}", highlight=False)
    elif long:
        kinds = ", ".join(sorted({s["kind"] for s in long["segments"]}))
        out.print(f"long video: {long['frames']} frames in {len(long['segments'])} segments ({kinds}; overlap "
                  f"{long['overlap']})", highlight=False)
    if post := rec.get("postprocess"):
        steps = ", ".join(s["name"] for s in post["steps"])
        out.print(f"post ({steps}): {post['num_frames']} frames {post['width']}x{post['height']} @ {post['fps']:g} fps",
                  highlight=False)
    for w in rec.get("warnings", []):
        err.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False)
