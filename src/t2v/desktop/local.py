"""A private ``t2v serve`` for the desktop app: started on a free loopback port when no ``--server`` is
given, and stopped when the app closes."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from t2v.errors import T2VError

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """``python -m t2v serve --host 127.0.0.1 --port P --no-ui [--model M]`` as a child process."""

    def __init__(self, model: str | None = None, *, env: dict[str, str] | None = None) -> None:
        self.model, self.env = model, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"t2v-desktop-server-{self.port}.log"

    def command(self) -> list[str]:
        # --no-ui: the app talks to the API only, so the server never imports Gradio nor mounts the page
        cmd = [sys.executable, "-m", "t2v", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"]
        return cmd + (["--model", self.model] if self.model else [])

    def start(self, timeout: float = 600.0) -> str:
        """Start it and wait until ``/healthz`` answers (the model warms up first); returns its URL."""
        import httpx

        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env if self.env is not None else dict(os.environ))
        deadline = time.monotonic() + timeout
        # One client for the polls: each httpx.get() builds a client and its SSL context (~20 ms of CPU), taken
        # from the server that is starting on the same cores.
        with httpx.Client(timeout=1, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while True:
                if self.proc.poll() is not None:
                    raise T2VError(f"the local t2v server stopped at start (exit {self.proc.returncode}): "
                                   f"{self.tail()}")
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        logger.info("local t2v server up at %s", self.url)
                        return self.url
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise T2VError(f"the local t2v server did not answer within {timeout:.0f} s: {self.tail()}")
                time.sleep(0.2)

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " / ".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
