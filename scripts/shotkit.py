"""What the screenshot scripts (screenshots.py for the web page, desktop_screenshots.py for the desktop app)
share: a free loopback port, JSON over HTTP, waiting for a server to answer, and a finished clip made through
the REST API. Standard library only."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request


class Failed(Exception):
    """A check failed, or a server or app did not get where it should."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 180, name: str = "t2v serve") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"{name} exited with status {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise Failed(f"{name} did not answer {url} within {timeout:.0f} s")


def make_clip(base: str, prompt: str, seed: int, formats: tuple[str, ...] = ("mp4", "webm")) -> dict:
    """Queue a clip through the REST API and wait for it; the finished job."""
    job = http_json(f"{base}/v1/videos", {"prompt": prompt, "seed": seed, "formats": list(formats)})
    for _ in range(600):
        job = http_json(f"{base}/v1/videos/{job['id']}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    if job["status"] != "succeeded":
        raise Failed(f"the history clip did not succeed: {job.get('status')} {job.get('error')}")
    return job
