"""The README's first command against the same job as a plain diffusers script, side by side in one run.

Each run is a fresh process (what a user types), interleaved: script, t2v, t2v with each extra option set,
script, ...; medians of the wall time and the ratio script / t2v (above 1: t2v is faster).

- script: ``DiffusionPipeline.from_pretrained(<t2v-shapes folder>)``, 25 steps, guidance 5, 8 frames 64x64,
  seed 1, ``export_to_video`` (the folder's own scheduler);
- t2v: ``t2v generate "a red circle moving right" --model t2v-shapes --seed 1 -o clip.mp4`` (its defaults:
  the same 25 steps, guidance 5, 8 frames 64x64), plus ``--variant "ARGS"`` variants (e.g. a step cache, or
  ``T2V_PROMPT_CACHE_MB=0``: leading ``NAME=VALUE`` words set environment variables of that side);
- with ``--server``: also the same command with ``--server URL`` against a ``t2v serve --model t2v-shapes``
  started before the runs (the model loaded once; its start is reported, not timed).

    .venv/bin/python benchmarks/bench_readme.py [--repeats 5] [--variant "--cache deepcache"] [--server] [--floor]
    .venv/bin/python benchmarks/bench_readme.py --repeats 5 --floor --variant T2V_PROMPT_CACHE_MB=0
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
T2V = str(ROOT / ".venv" / "bin" / "t2v")
PROMPT = "a red circle moving right"
SCRIPT = """
import sys, torch
from diffusers import DiffusionPipeline
from diffusers.utils import export_to_video
pipe = DiffusionPipeline.from_pretrained(sys.argv[1])
frames = pipe(sys.argv[2], num_frames=8, height=64, width=64, num_inference_steps=25, guidance_scale=5.0,
              generator=torch.Generator("cpu").manual_seed(1)).frames[0]
export_to_video(frames, sys.argv[3], fps=8)
"""

FLOOR = ("import torch; from diffusers import UNet3DConditionModel, AutoencoderKL; "
         "from transformers import CLIPTextModel, CLIPTokenizer")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds ``cmd`` takes; leading ``NAME=VALUE`` words of it are set in its environment."""
    extra = {}
    while cmd and "=" in cmd[0] and not cmd[0].startswith(("-", "/")):
        name, _, value = cmd[0].partition("=")
        extra[name], cmd = value, cmd[1:]
    start = time.perf_counter()
    subprocess.run(cmd, env={**env, **extra}, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", action="append", default=[], help="Extra t2v flags to time as another side.")
    parser.add_argument("--server", action="store_true", help="Also time t2v generate --server against a warm t2v serve.")
    parser.add_argument("--floor", action="store_true", help="Also time a process that only imports torch, diffusers' "
                        "UNet3D and VAE and transformers' CLIP: what any process loading this model through diffusers "
                        "pays, so script / floor is the most any cold process can reach.")
    args = parser.parse_args()
    from t2v.models.registry import lookup

    folder = str(lookup("t2v-shapes").bundled_path)
    with tempfile.TemporaryDirectory() as tmp:
        home, out = Path(tmp) / "home", Path(tmp)
        env = {**os.environ, "T2V_HOME": str(home), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1"}
        sides: dict[str, list[str]] = {"diffusers script": [PYTHON, "-c", SCRIPT, folder, PROMPT, str(out / "s.mp4")],
                                       "t2v": [T2V, "generate", PROMPT, "--model", "t2v-shapes", "--seed", "1", "-q",
                                               "-o", str(out / "t.mp4")]}
        for v in args.variant:
            words = shlex.split(v)
            env_words = [w for w in words if "=" in w and not w.startswith("-")]
            flags = [w for w in words if w not in env_words]
            sides[f"t2v {v}"] = [*env_words, *sides["t2v"], *flags]
        if args.floor:
            sides["imports only (the floor)"] = [PYTHON, "-c", FLOOR]
        server = start_server(env) if args.server else None
        try:
            if server is not None:
                url, ready_s = server[1], server[2]
                print(f"t2v serve --model t2v-shapes ready in {ready_s:.1f} s (not timed below)")
                sides["t2v --server (warm t2v serve)"] = [T2V, "generate", PROMPT, "--server", url, "--seed", "1", "-q",
                                                          "-o", str(out / "r.mp4")]
            for cmd in sides.values():  # warm the page cache, t2v's model-hash and dry-run caches: not timed
                timed(cmd, env)
            times: dict[str, list[float]] = {k: [] for k in sides}
            for _ in range(args.repeats):
                for name, cmd in sides.items():
                    times[name].append(timed(cmd, env))
        finally:
            if server is not None:
                server[0].terminate()
                server[0].wait(timeout=60)
    base = statistics.median(times["diffusers script"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}; "
          f"medians of {args.repeats} fresh processes each")
    print(f"{'side':<34} {'median s':>9} {'script / side':>14}   all runs")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<34} {med:9.2f} {base / med:13.2f}x   {', '.join(f'{t:.2f}' for t in ts)}")


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    """``t2v serve --model t2v-shapes`` on a free port, warm: (process, URL, seconds until /readyz said ready)."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([T2V, "serve", "--model", "t2v-shapes", "--host", "127.0.0.1", "--port", str(port)],
                            env={**env, "T2V_UI": "0"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - start < 300:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).json().get("ready"):
                return proc, url, time.perf_counter() - start
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("t2v serve did not become ready in 300 s")


if __name__ == "__main__":
    main()
