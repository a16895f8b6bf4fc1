"""A real ``t2v serve`` (a subprocess on a free loopback port) over the tiny model, with API keys on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    from t2v.service import JobService
    from t2v.service.keys import create_key
    from t2v.settings import Settings

    home = tmp_path_factory.mktemp("client-home")
    service = JobService(Settings(home=home))
    _, key = create_key(service.repo, "main")
    _, slow_key = create_key(service.repo, "slow", rate="1/hour")
    service.engine.dispose()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2V_")}
    env.update(T2V_HOME=str(home), T2V_MODEL_ROOTS=str(tmp_path_factory.getbasetemp()), HF_HUB_OFFLINE="1",
               T2V_OFFLINE="1", T2V_CHECKPOINT_EVERY="1")
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "t2v", "serve", "--port", str(port), "--model", str(tiny_model)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"t2v serve exited {proc.returncode}: {(home / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"t2v serve not up after 90 s: {(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield SimpleNamespace(url=url, key=key, slow_key=slow_key, model=str(tiny_model), home=home)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
