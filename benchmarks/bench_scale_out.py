"""Throughput of the Ray executor on this machine: jobs per minute with 1 and 2 Ray worker actors, and the
overhead per job against the local executor (worker threads in the server's process).

Each configuration is a real ``t2v serve`` over a fresh home (SQLite, local files: the same stores for all, so
the difference is the executor), with the tiny model warmed, every worker on one CPU thread (T2V_THREADS=1):

  * local   ``t2v serve --workers 1``                                   (threads, the default)
  * local worker process: ``t2v serve --no-workers`` + ``t2v worker --workers 1`` (threads, in their own process)
  * ray x1  ``t2v serve --executor ray --ray-address A --workers 1``    (one actor on a local Ray cluster)
  * ray x2  ``t2v serve --executor ray --ray-address A --workers 2``

Throughput: ``--jobs`` jobs submitted at once, the time from the first submit until the last has succeeded.
Latency: ``--sequential`` jobs one after the other on an idle server, submit to succeeded (median); the
overhead is the Ray median minus the local one.

    .venv/bin/python benchmarks/bench_scale_out.py [--jobs 16] [--sequential 6] [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import socket
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
SECTION = "## Scale-out: Ray executor throughput"
DOCS = ROOT / "docs" / "benchmarks.md"
JOB = {"prompt": "a red square", "num_frames": 16, "width": 64, "height": 64, "num_inference_steps": 10}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: Path, model: str, args: list[str]) -> tuple[list[subprocess.Popen], str]:
    """``t2v serve ARGS``; with ``--no-workers``, a ``t2v worker --workers 1`` process beside it."""
    port = free_port()
    env = {**os.environ, "T2V_HOME": str(home), "HF_HUB_OFFLINE": "1", "T2V_THREADS": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "t2v", "serve", "--port", str(port), "--model", model, *args],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    if "--no-workers" in args:
        procs.append(subprocess.Popen([sys.executable, "-m", "t2v", "worker", "--model", model, "--workers", "1"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    proc = procs[0]
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return procs, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"t2v serve {' '.join(args)} exited {proc.returncode}")
        time.sleep(0.2)
    raise SystemExit("server not ready after 180 s")


def wait_all(client: httpx.Client, ids: list[str]) -> None:
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            job = client.get(f"/v1/videos/{job_id}").json()
            if job["status"] in ("failed", "cancelled"):
                raise SystemExit(f"job {job_id} {job['status']}: {job['error']}")
            if job["status"] == "succeeded":
                pending.discard(job_id)
        time.sleep(0.02 if len(pending) <= 1 else 0.25)  # light on the API (2 cores) while many are pending


def measure(url: str, jobs: int, sequential: int) -> dict:
    with httpx.Client(base_url=url, timeout=60) as client:
        submit = lambda seed: client.post("/v1/videos", json={**JOB, "seed": seed}).json()["id"]  # noqa: E731
        wait_all(client, [submit(0)])  # warm: model loaded, first-run costs paid
        latencies = []
        for i in range(sequential):
            t0 = time.perf_counter()
            wait_all(client, [submit(1000 + i)])
            latencies.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ids = [submit(2000 + i) for i in range(jobs)]
        wait_all(client, ids)
        elapsed = time.perf_counter() - t0
    return {"jobs_per_min": jobs / elapsed * 60, "latency_s": statistics.median(latencies), "elapsed_s": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--sequential", type=int, default=6)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

    from ray.cluster_utils import Cluster

    from bench_cache import cpu_name  # noqa: E402  (benchmarks/, beside this file)

    from t2v.models.tiny import make_tiny

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = str(make_tiny(Path(tmp) / "tiny"))
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0,
                                                                "include_dashboard": False})
        try:
            configs = {"local (threads x1)": ["--workers", "1"],
                       "local worker process": ["--no-workers"],
                       "ray x1": ["--executor", "ray", "--ray-address", cluster.address, "--workers", "1"],
                       "ray x2": ["--executor", "ray", "--ray-address", cluster.address, "--workers", "2"]}
            for name, flags in configs.items():
                procs, url = serve(Path(tmp) / name.replace(" ", "-"), model, flags)
                try:
                    results[name] = measure(url, args.jobs, args.sequential)
                finally:
                    for proc in procs:
                        proc.terminate()
                        proc.wait(60)
                r = results[name]
                print(f"{name:20s} {r['jobs_per_min']:6.1f} jobs/min  median latency {r['latency_s']:.3f} s", flush=True)
        finally:
            cluster.shutdown()

    local, apart = results["local (threads x1)"], results["local worker process"]
    one, two = results["ray x1"], results["ray x2"]
    job = f"{JOB['num_frames']} frames {JOB['width']}x{JOB['height']}, {JOB['num_inference_steps']} steps"
    lines = [SECTION, "",
             f"Measured {datetime.now():%Y-%m-%d} on {cpu_name()} ({os.cpu_count()} cores), torch CPU, every worker on "
             f"one thread; tiny model, {job}; {args.jobs} jobs queued at once, {args.sequential} one at a time "
             "(`benchmarks/bench_scale_out.py`). SQLite and local files for all of them, so the difference is the "
             "executor.", "",
             "| executor | jobs/min | median latency (submit to succeeded) |", "| --- | ---: | ---: |"]
    lines += [f"| {n} | {r['jobs_per_min']:.1f} | {r['latency_s']:.3f} s |" for n, r in results.items()]
    lines += ["", f"Ray x2 / Ray x1 throughput: {two['jobs_per_min'] / one['jobs_per_min']:.2f}x; Ray x1 / local: "
              f"{one['jobs_per_min'] / local['jobs_per_min']:.2f}x; Ray x1 / local worker process: "
              f"{one['jobs_per_min'] / apart['jobs_per_min']:.2f}x. Overhead per job of the Ray executor (median "
              f"latency): {1000 * (one['latency_s'] - local['latency_s']):+.0f} ms against the local executor, "
              f"{1000 * (one['latency_s'] - apart['latency_s']):+.0f} ms against a local worker in its own process "
              "(`t2v serve --no-workers` + `t2v worker`).", ""]
    text = "\n".join(lines)
    print("\n" + text)
    if args.write_docs:
        doc = DOCS.read_text()
        if SECTION in doc:
            start = doc.index(SECTION)
            end = doc.find("\n## ", start + len(SECTION))
            doc = doc[:start] + text + (doc[end + 1:] if end != -1 else "")
        else:
            doc = doc.rstrip() + "\n\n" + text
        DOCS.write_text(doc)


if __name__ == "__main__":
    main()
