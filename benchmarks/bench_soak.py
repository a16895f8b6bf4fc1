"""The soak of tests/api/test_soak.py, its figures printed: 50 jobs from 10 clients against real
``t2v serve --model`` processes SIGKILLed and restarted at random, on one server (2 workers, SQLite) and on two
servers over one PostgreSQL database. Runs that test file (PostgreSQL started from the Debian binaries, as the
suite does) with ``T2V_SOAK_REPORT`` naming where each run writes its figures.

    .venv/bin/python benchmarks/bench_soak.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "soak.jsonl"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/api/test_soak.py",
                        "tests/api/test_soak_two_servers.py"],
                       cwd=ROOT, env={**os.environ, "T2V_SOAK_REPORT": str(report)}, check=True)
        runs = [json.loads(line) for line in report.read_text().splitlines()]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    keys = list(runs[0]["figures"])
    print("| figure | " + " | ".join(r["name"] for r in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for k in keys:
        print(f"| {k} | " + " | ".join(str(r["figures"][k]) for r in runs) + " |")


if __name__ == "__main__":
    main()
