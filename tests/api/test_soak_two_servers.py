"""The soak on two servers over one PostgreSQL database: jobs from many clients while either server is SIGKILLed
and restarted at random; the other keeps serving. Nothing lost, nothing run twice, every video whole, nothing
left over (tests/api/soak.py): 20 jobs from 5 clients through 4 kills, each landing once some job has moved on.

The servers' starts are forks of tests/forkserver.py (torch imported once, not at every restart); the standing
50-job soak is benchmarks/bench_soak.py."""

from __future__ import annotations

import pytest

from tests.api.soak import check, run_soak

pytestmark = pytest.mark.slow


def test_soak_two_servers_on_one_database(tiny_model, tmp_path, pg_database):
    check(run_soak(tmp_path / "home", tiny_model, n_servers=2, seed=13, kills=4, database_url=pg_database,
                   n_jobs=20, n_clients=5),
          "two servers, PostgreSQL")
