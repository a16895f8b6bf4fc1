"""A real ``t2v serve`` for tests: a subprocess on a free loopback port over a home folder, with API keys."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

from t2v.desktop.local import free_port
from tests.forkserver import start_t2v
from tests.web import HTTP


def make_keys(home: Path, *specs: tuple[str, dict]) -> list[str]:
    """Create API keys ``(name, options)`` in ``home``'s database; returns their tokens."""
    from t2v.service import build_services
    from t2v.service.keys import create_key
    from t2v.settings import Settings

    service = build_services(Settings(home=home))
    tokens = [create_key(service.repo.keys, name, **options)[1] for name, options in specs]
    service.engine.dispose()
    return tokens


@contextlib.contextmanager
def serve(home: Path, model: str, *, model_roots: Path, workers: int = 1, env: dict[str, str] | None = None):
    """``t2v serve --model MODEL`` on a free port over ``home`` (a fork from tests/forkserver.py); yields its URL;
    stopped on exit. Without the web page (T2V_UI=0: no Gradio import at start), failed tries retried after
    0.05 s; ``env`` can change both."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("T2V_") or k == "T2V_CPU_BF16"}
    environ.update(T2V_HOME=str(home), T2V_MODEL_ROOTS=str(model_roots), HF_HUB_OFFLINE="1", T2V_OFFLINE="1",
                   T2V_CHECKPOINT_EVERY="1", T2V_UI="0", T2V_RETRY_PAUSE_S="0.05", **(env or {}))
    log_path = home / "server.log"
    proc = start_t2v(["serve", "--port", str(port), "--model", model, "--workers", str(workers)], environ, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"t2v serve exited {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                if HTTP.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"t2v serve not up after 90 s: {log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield SimpleNamespace(url=url, home=home, model=model, log=log_path)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it has not gone after 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def as_from_a_terminal() -> None:
    """``preexec_fn`` for a command a test interrupts with Ctrl-C: SIGINT as a shell in a terminal delivers it
    (default action, not blocked), whatever the pytest process inherited or a library in it set. An ignored or
    blocked SIGINT is inherited by a new program, which then runs on through the test's Ctrl-C."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
