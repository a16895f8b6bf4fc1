"""The soak on one server: jobs from many clients while the server is SIGKILLed and restarted at random. Nothing
lost, nothing run twice, every video whole, nothing left over (tests/api/soak.py): 20 jobs from 5 clients
through 3 kills, each landing once some job has moved on; the figures of the standing 50-job soak are in
docs/benchmarks.md, from benchmarks/bench_soak.py. The two-server
soak is tests/api/test_soak_two_servers.py, a file of its own so that pytest-xdist's --dist loadfile runs the
two side by side.

The server's starts are forks of tests/forkserver.py (torch imported once, not at every restart). The 20 jobs
keep jobs queued through every kill; a soak with the stale-claim requeue turned off fails here as the 50-job one does
(docs/benchmarks.md, "Suite time")."""

from __future__ import annotations

import pytest

from tests.api.soak import check, run_soak

pytestmark = pytest.mark.slow


def test_soak_one_server(tiny_model, tmp_path):
    check(run_soak(tmp_path / "home", tiny_model, n_servers=1, workers=2, kills=3, seed=11,
                   n_jobs=20, n_clients=5),
          "one server, 2 workers, SQLite")
