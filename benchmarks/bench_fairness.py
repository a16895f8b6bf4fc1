"""How long one key's single job waits behind another key's long queue: oldest-first against the fair queue
(T2V_FAIR_WINDOW_S), in one run. A real service over the tiny model with one worker thread: key A submits 20 jobs,
then key B submits one; B's wait is the time from its submit to its start. Each policy runs ``--repeats`` times;
medians are reported with the ratio::

    .venv/bin/python benchmarks/bench_fairness.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from t2v.models.tiny import make_tiny
from t2v.service import build_services
from t2v.service.keys import create_key
from t2v.settings import Settings

QUICK = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def run(model: Path, home: Path, window: float, queued: int) -> tuple[float, float]:
    """(B's wait in seconds, A's jobs that started before B's)."""
    settings = Settings(home=home, fair_window_s=window, default_model=str(model), model_roots=str(model.parent),
                        offline=True, poll_s=0.05)
    service = build_services(settings, workers=1)
    try:
        _, a = create_key(service.repo.keys, "a")
        _, b = create_key(service.repo.keys, "b")
        key_a, key_b = service.access.authenticate(a), service.access.authenticate(b)
        service.start()
        for i in range(queued):
            service.submit({"prompt": f"a red ball {i}", "seed": i, **QUICK}, api_key=key_a)
        time.sleep(0.5)  # A's first job is running
        mine, _ = service.submit({"prompt": "a blue square", "seed": 99, **QUICK}, api_key=key_b)
        while (job := service.get(mine.id)).status not in ("succeeded", "failed"):
            time.sleep(0.05)
        before = [j for j in service.list(limit=100, api_key=key_a) if j.started_at and j.started_at < job.started_at]
        return (job.started_at - job.created_at).total_seconds(), len(before)
    finally:
        service.stop(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queued", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny(Path(tmp) / "models" / "tiny", family="modelscope", seed=0)
        waits: dict[str, list[tuple[float, int]]] = {"oldest first": [], "fair queue": []}
        for r in range(args.repeats):  # interleaved, so drift on a shared machine hits both alike
            for name, window in (("oldest first", 0.0), ("fair queue", 600.0)):
                waits[name].append(run(model, Path(tmp) / f"home-{name[0]}{r}", window, args.queued))
    print(f"key A: {args.queued} queued jobs, then key B: 1 job; one worker; medians of {args.repeats}")
    print("| queue | B waits | A's jobs started first |\n|---|---:|---:|")
    med = {}
    for name, rows in waits.items():
        med[name] = statistics.median(w for w, _ in rows)
        print(f"| {name} | {med[name]:.2f} s | {statistics.median(n for _, n in rows):.0f} |")
    print(f"B waits {med['oldest first'] / max(med['fair queue'], 1e-6):.1f}x less with the fair queue")


if __name__ == "__main__":
    main()
