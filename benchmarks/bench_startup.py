"""Start-up of the README's first command: the planner's dry run measured in the process (cold: no dry-run
cache on disk) against read from ``$T2V_HOME/cache/dry-runs.json`` (warm), each a fresh process.

Runs are interleaved cold, warm, cold, warm... over one ``T2V_HOME`` (the model-hash cache is warm for
both, so only the dry run differs); medians of the wall time are reported.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T2V = str(ROOT / ".venv" / "bin" / "t2v")
COMMAND = [T2V, "generate", "a red circle moving right", "--model", "t2v-shapes", "--seed", "1", "-q"]


def run(home: Path, out: Path, cold: bool) -> float:
    cache = home / "cache" / "dry-runs.json"
    if cold:
        cache.unlink(missing_ok=True)
    env = {**os.environ, "T2V_HOME": str(home), "HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run([*COMMAND, "-o", str(out / "clip.mp4")], env=env, check=True, capture_output=True)
    took = time.perf_counter() - start
    assert cache.is_file(), "the run wrote no dry-run cache"
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home, out = Path(tmp) / "home", Path(tmp) / "out"
        out.mkdir()
        run(home, out, cold=True)  # warm-up: page cache, model-hash cache
        times: dict[str, list[float]] = {"cold": [], "warm": []}
        for _ in range(args.repeats):
            for name in ("cold", "warm"):
                times[name].append(run(home, out, cold=name == "cold"))
    cold, warm = statistics.median(times["cold"]), statistics.median(times["warm"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"command: {' '.join(COMMAND[1:])}")
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"warm/cold: {warm / cold:.2f} (saved {cold - warm:.2f} s per fresh process)")


if __name__ == "__main__":
    main()
