"""Job service latency on loopback: submit-to-start latency and status-request latency (p50/p99).

Starts a real `t2v serve` with a tiny model (warmed once with --model), then
  * submits jobs one at a time into an empty queue and reads started_at - created_at from each job;
  * sends status requests (GET /v1/videos/{id}) over one keep-alive connection and reports percentiles.

    .venv/bin/python benchmarks/bench_service.py [--jobs 20] [--requests 1000] [--write-docs]
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
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
SECTION = "## Service: submit-to-start and status latency"
DOCS = ROOT / "docs" / "benchmarks.md"
SMALL = {"num_frames": 2, "width": 16, "height": 16, "num_inference_steps": 1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    from t2v.models.tiny import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny(Path(tmp) / "tiny")
        env = {**os.environ, "T2V_HOME": str(Path(tmp) / "home"), "HF_HUB_OFFLINE": "1"}
        server = subprocess.Popen([sys.executable, "-m", "t2v", "serve", "--port", str(args.port), "--model", str(model)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{args.port}"
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                while True:
                    try:
                        ready = client.get("/readyz")
                        if ready.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
                starts, ends = [], []
                for i in range(args.jobs):
                    job = client.post("/v1/videos", json={"prompt": f"latency {i}", "seed": i, **SMALL}).json()
                    while (state := client.get(f"/v1/videos/{job['id']}").json())["status"] not in ("succeeded", "failed"):
                        time.sleep(0.01)
                    created = datetime.fromisoformat(state["created_at"])
                    starts.append((datetime.fromisoformat(state["started_at"]) - created).total_seconds())
                    ends.append((datetime.fromisoformat(state["finished_at"]) - created).total_seconds())
                latencies = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    client.get(f"/v1/videos/{job['id']}").raise_for_status()
                    latencies.append(time.perf_counter() - t0)
        finally:
            server.terminate()
            server.wait(30)

    rows = [
        ("submit → started (empty queue, model warm)", statistics.median(starts), percentile(starts, 99)),
        ("submit → finished (1 step, 2 frames 16x16)", statistics.median(ends), percentile(ends, 99)),
        (f"GET /v1/videos/{{id}} ({args.requests} requests, keep-alive)", statistics.median(latencies), percentile(latencies, 99)),
    ]
    table = "| measure | median | p99 |\n|---|---:|---:|\n" + "\n".join(
        f"| {name} | {med * 1000:.1f} ms | {p99 * 1000:.1f} ms |" for name, med, p99 in rows)
    print(table)
    if args.write_docs:
        cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                    if l.startswith("model name")), platform.processor())
        body = (f"{SECTION}\n\nA real `t2v serve` on loopback with a tiny model, SQLite store, one worker. {args.jobs} jobs "
                f"submitted one at a time into an empty queue; the worker polls the queue and is woken on submit.\n\n"
                f"{table}\n\nMachine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}.\n\n"
                f"Reproduce:\n\n```\n.venv/bin/python benchmarks/bench_service.py --jobs {args.jobs} "
                f"--requests {args.requests} --write-docs\n```\n")
        text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
        if SECTION in text:
            start = text.index(SECTION)
            nxt = text.find("\n## ", start + len(SECTION))
            text = text[:start] + body + (text[nxt + 1:] if nxt != -1 else "")
        else:
            text = text.rstrip() + "\n\n" + body
        DOCS.write_text(text)


if __name__ == "__main__":
    main()
