"""A soak: many small jobs from many clients against real ``t2v serve --model`` processes on one database, with
the servers SIGKILLed and restarted at random meanwhile; what came out, measured.

Each client submits its jobs with an idempotency key and polls them, going to another server (or the same one,
once restarted) when the one it used does not answer, and submitting again with the same key when it cannot
tell whether a submit landed. :func:`run_soak` returns the figures; ``tests/api/test_soak.py`` asserts on them
and ``benchmarks/bench_soak.py`` prints them for docs/benchmarks.md.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx

from t2v.store import Repository, open_database
from tests.api.test_server import Server
from tests.web import HTTP

#: A job small enough that 50 of them run in about a minute on two cores, with steps to be killed in.
SOAK_JOB = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 6, "formats": ["mp4"]}
# T2V_MAX_ATTEMPTS above the kills: a job the random killer happens to hit three times would otherwise fail by
# design (tests/api/test_chaos.py checks that limit); here every job must come through every kill.
SOAK_ENV = {"T2V_CHECKPOINT_EVERY": "2", "T2V_HEARTBEAT_S": "0.3", "T2V_STALE_AFTER_S": "3", "OMP_NUM_THREADS": "1",
            "T2V_MAX_ATTEMPTS": "10"}


#: How long the clients wait while none of their jobs moves (a new status or step) before they report the
#: unfinished ones: a lost claim leaves its job still for good while the others finish. Longer than a restart on a
#: loaded machine; a slow machine's jobs keep moving, so a slow run is not a failure.
STALL_LIMIT_S = 150.0


class Moves:
    """When any job last moved (status or step changed), as the clients' polls saw it."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple] = {}
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def saw(self, job_id: str, job: dict) -> None:
        state = (job.get("status"), (job.get("progress") or {}).get("step"))
        with self.lock:
            if self.seen.get(job_id) != state:
                self.seen[job_id], self.last = state, time.monotonic()

    def stalled_s(self) -> float:
        with self.lock:
            return time.monotonic() - self.last


def check(figures: Figures, name: str) -> None:
    """What every soak must show: each job made once and whole through the kills, nothing lost or left over."""
    summary = figures.summary()
    if os.environ.get("T2V_SOAK_REPORT"):  # benchmarks/bench_soak.py collects the figures
        with open(os.environ["T2V_SOAK_REPORT"], "a") as out:
            out.write(json.dumps({"name": name, "figures": summary}) + "\n")
    assert figures.kills >= 3, summary
    assert figures.succeeded == figures.jobs, summary  # every job made, none failed for the kills
    assert figures.lost == 0 and figures.duplicates == 0, summary
    assert figures.bad_files == [] and figures.leftovers == [], (figures.bad_files, figures.leftovers)
    assert figures.attempts_max <= figures.kills + 1 and figures.attempts_total >= figures.jobs, summary


@dataclass
class Figures:
    jobs: int = 0
    clients: int = 0
    servers: int = 0
    kills: int = 0
    succeeded: int = 0
    attempts_total: int = 0
    attempts_max: int = 0
    duplicates: int = 0  # jobs beyond one per idempotency key
    lost: int = 0  # submits acknowledged that no server lists
    leftovers: list[str] = field(default_factory=list)  # checkpoints, torn writes, files of unknown jobs
    bad_files: list[str] = field(default_factory=list)  # a succeeded job whose video does not decode as asked
    failures: list[str] = field(default_factory=list)  # each job that did not succeed: status, attempts, error
    submit_to_start_s: list[float] = field(default_factory=list)
    status_s: list[float] = field(default_factory=list)  # each status request's latency (answered ones)
    wall_s: float = 0.0

    @staticmethod
    def p(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        return {"jobs": self.jobs, "clients": self.clients, "servers": self.servers, "kills": self.kills,
                "succeeded": self.succeeded, "attempts": self.attempts_total, "max_attempts": self.attempts_max,
                "duplicates": self.duplicates, "lost": self.lost, "leftovers": len(self.leftovers),
                "bad_files": len(self.bad_files), "failures": self.failures,
                "submit_to_start_median_s": round(statistics.median(self.submit_to_start_s), 2),
                "submit_to_start_p99_s": round(self.p(self.submit_to_start_s, 0.99), 2),
                "status_median_ms": round(1000 * statistics.median(self.status_s), 1),
                "status_p99_ms": round(1000 * self.p(self.status_s, 0.99), 1), "wall_s": round(self.wall_s, 1)}


class Cluster:
    """The servers, a background killer, and a client's view of them (any server that answers)."""

    def __init__(self, home: Path, model, n_servers: int, seed: int, database_url: str | None = None,
                 workers: int = 1) -> None:
        self.home, self.rng = home, random.Random(seed)
        env = {**SOAK_ENV, **({"T2V_DATABASE_URL": database_url} if database_url else {})}
        args = ["--model", str(model), "--workers", str(workers)]
        self.servers = [Server(home, model, extra_env=env, args=args, ready_path="/healthz") for _ in range(n_servers)]
        with ThreadPoolExecutor(n_servers) as pool:
            list(pool.map(lambda s: s.start(), self.servers))
        self.repo = Repository(open_database(database_url or f"sqlite:///{home / 't2v.db'}"))
        self.lock = threading.Lock()
        self.down: set[int] = set()
        self.kills = 0
        self.done_at_kill = 0  # progress() at the last kill: each kill, the first too, lands once some job has moved
        self.stop_killing = threading.Event()

    def urls(self, prefer: int) -> list[str]:
        """Servers' URLs, ``prefer``'s first."""
        n = len(self.servers)
        return [self.servers[(prefer + i) % n].url for i in range(n)]

    def killer(self, kills: int, every_s: tuple[float, float]) -> None:
        """SIGKILL a random running server ``kills`` times, each once some job has moved on since the last kill
        and then after a random pause, and start it again in the background (with two servers the other keeps serving meanwhile; with one, clients wait for it)."""
        restarts = []
        for _ in range(kills):
            if not self.wait_for_progress() or self.stop_killing.wait(self.rng.uniform(*every_s)):
                break
            while True:  # a server that is up (with one server: back from the last kill)
                with self.lock:
                    up = [i for i in range(len(self.servers)) if i not in self.down]
                    if up:
                        victim = self.rng.choice(up)
                        self.down.add(victim)
                        break
                if self.stop_killing.wait(0.1):
                    return self.join(restarts)
            self.servers[victim].stop(signal.SIGKILL)
            self.kills += 1
            restarts.append(threading.Thread(target=self.bring_back, args=(victim,), daemon=True))
            restarts[-1].start()
        self.join(restarts)

    def progress(self) -> int:
        """The work done so far: denoising steps checkpointed or finished by all jobs (a finished job counts
        its whole run)."""
        return sum(job.total or 0 if job.status == "succeeded" else job.step or 0
                   for job in self.repo.list_jobs(limit=500))

    def wait_for_progress(self) -> bool:
        """Wait until some job has moved on since the last kill (False: the soak is over). Without it a killer
        faster than a restart plus a first step could keep every server down and no job would ever run."""
        while not self.stop_killing.is_set():
            done = self.progress()
            if done > self.done_at_kill:
                self.done_at_kill = done
                return True
            self.stop_killing.wait(0.2)
        return False

    @staticmethod
    def join(threads) -> None:
        for t in threads:
            t.join(300)

    def bring_back(self, victim: int) -> None:
        self.servers[victim].start()
        with self.lock:
            self.down.discard(victim)

    def close(self) -> None:
        self.stop_killing.set()
        for s in self.servers:
            s.stop()
        self.repo.engine.dispose()


def client(cluster: Cluster, number: int, n_jobs: int, figures: Figures, results: dict, lock: threading.Lock,
           moves: Moves) -> None:
    """Submit ``n_jobs`` jobs (each with its own idempotency key, retried on any server until one answers 2xx),
    then poll them until each has finished, or until no job has moved for :data:`STALL_LIMIT_S`."""
    mine: list[tuple[str, str]] = []  # (idempotency key, job id)
    for i in range(n_jobs):
        key = f"soak-{number}-{i}-{uuid.uuid4().hex[:8]}"
        body = {"prompt": f"soak {number} {i}", "seed": number * 100 + i, "idempotency_key": key, **SOAK_JOB}
        job_id, attempt, deadline = None, 0, time.monotonic() + 300  # a restart on a loaded machine takes a while
        while time.monotonic() < deadline:
            url = cluster.urls(number + attempt)[0]
            attempt += 1
            try:
                r = HTTP.post(f"{url}/v1/videos", json=body, timeout=10)
                if r.status_code in (200, 202):
                    job_id = r.json()["id"]
                    moves.saw(job_id, {"status": "submitted"})
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert job_id is not None, f"client {number} could not submit job {i}"
        mine.append((key, job_id))
    pending = dict(mine)
    while pending:
        if (still := moves.stalled_s()) > STALL_LIMIT_S:  # a job no server ever finishes (a lost claim)
            with lock:
                figures.failures += [f"{job_id}: not finished, no job moved for {still:.0f} s" for job_id in pending.values()]
            return
        for key, job_id in list(pending.items()):
            for url in cluster.urls(number):
                start = time.perf_counter()
                try:
                    r = HTTP.get(f"{url}/v1/videos/{job_id}", timeout=10)
                except httpx.HTTPError:
                    continue
                with lock:
                    figures.status_s.append(time.perf_counter() - start)
                if r.status_code == 200:
                    moves.saw(job_id, r.json())
                if r.status_code == 404:
                    with lock:
                        figures.lost += 1
                    pending.pop(key)
                elif r.json()["status"] in ("succeeded", "failed", "cancelled"):
                    with lock:
                        results[key] = r.json()
                    pending.pop(key)
                break
        time.sleep(0.2)


def run_soak(home: Path, model, *, n_servers: int, n_jobs: int = 50, n_clients: int = 10, kills: int = 6,
             every_s: tuple[float, float] = (0.5, 2.0), seed: int = 5, database_url: str | None = None,
             workers: int = 1) -> Figures:
    figures = Figures(jobs=n_jobs, clients=n_clients, servers=n_servers)
    results: dict[str, dict] = {}
    lock = threading.Lock()
    started = time.perf_counter()
    cluster = Cluster(home, model, n_servers, seed, database_url, workers)
    try:
        killer = threading.Thread(target=cluster.killer, args=(kills, every_s), daemon=True)
        killer.start()
        per_client = n_jobs // n_clients
        with ThreadPoolExecutor(n_clients) as pool:
            moves = Moves()
            for f in [pool.submit(client, cluster, c, per_client, figures, results, lock, moves)
                      for c in range(n_clients)]:
                f.result()
        cluster.stop_killing.set()
        killer.join(300)  # and the restarts it started
        figures.kills = cluster.kills
        figures.wall_s = time.perf_counter() - started
        rows = cluster.repo.list_jobs(limit=500)
        by_key: dict[str, int] = {}
        for row in rows:
            by_key[row.idempotency_key] = by_key.get(row.idempotency_key, 0) + 1
        figures.duplicates = sum(n - 1 for n in by_key.values())
        for key, job in results.items():
            figures.attempts_total += job["attempts"]
            figures.attempts_max = max(figures.attempts_max, job["attempts"])
            if job["status"] != "succeeded":
                figures.failures.append(f"{job['id']}: {job['status']} after {job['attempts']} attempts: "
                                        f"{job.get('error')}")
                continue
            figures.succeeded += 1
            row = next(r for r in rows if r.id == job["id"])
            figures.submit_to_start_s.append((row.started_at - row.created_at).total_seconds())
            video = home / "videos" / job["id"] / "video.mp4"
            try:
                with av.open(io.BytesIO(video.read_bytes())) as c:
                    frames = list(c.decode(video=0))
                ok = len(frames) == SOAK_JOB["num_frames"] and frames[0].width == SOAK_JOB["width"]
            except (OSError, av.FFmpegError):
                ok = False
            if not ok:
                figures.bad_files.append(job["id"])
        known = {row.id for row in rows}
        videos = home / "videos"
        for folder in videos.iterdir() if videos.is_dir() else []:
            if folder.name not in known:
                figures.leftovers.append(str(folder))
            figures.leftovers += [str(p) for p in folder.iterdir() if p.name.startswith(".")]
        checkpoints = home / "checkpoints"
        figures.leftovers += [str(p) for p in checkpoints.glob("*")] if checkpoints.is_dir() else []
    finally:
        cluster.close()
    return figures
