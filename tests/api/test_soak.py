"""The soak: jobs from many clients while the servers are SIGKILLed and restarted at random, on one server
and on two servers over one database. Nothing lost, nothing run twice, every video whole, nothing left over
(tests/api/soak.py): 50 jobs from 10 clients through 4 kills of one server and 6 of two; the figures of a run
are in docs/benchmarks.md, from benchmarks/bench_soak.py."""

from __future__ import annotations

import json
import os

import pytest

from tests.api.soak import run_soak

pytestmark = pytest.mark.slow


def check(figures, name: str) -> None:
    summary = figures.summary()
    if os.environ.get("T2V_SOAK_REPORT"):  # benchmarks/bench_soak.py collects the figures
        with open(os.environ["T2V_SOAK_REPORT"], "a") as out:
            out.write(json.dumps({"name": name, "figures": summary}) + "\n")
    assert figures.kills >= 3, summary
    assert figures.succeeded == figures.jobs, summary  # every job made, none failed for the kills
    assert figures.lost == 0 and figures.duplicates == 0, summary
    assert figures.bad_files == [] and figures.leftovers == [], (figures.bad_files, figures.leftovers)
    assert figures.attempts_max <= figures.kills + 1 and figures.attempts_total >= figures.jobs, summary


def test_soak_one_server(tiny_model, tmp_path):
    check(run_soak(tmp_path / "home", tiny_model, n_servers=1, workers=2, kills=4, seed=11),
          "one server, 2 workers, SQLite")


def test_soak_two_servers_on_one_database(tiny_model, tmp_path, pg_database):
    check(run_soak(tmp_path / "home", tiny_model, n_servers=2, seed=13, kills=6, database_url=pg_database),
          "two servers, PostgreSQL")
