"""The soak on one server: jobs from many clients while the server is SIGKILLed and restarted at random. Nothing
lost, nothing run twice, every video whole, nothing left over (tests/api/soak.py): 50 jobs from 10 clients
through 4 kills; the figures of a run are in docs/benchmarks.md, from benchmarks/bench_soak.py. The two-server
soak is tests/api/test_soak_two_servers.py, a file of its own so that pytest-xdist's --dist loadfile runs the
two side by side.

Adds about 3 minutes to the suite: 50 jobs (the standing soak, as docs/benchmarks.md reports it) while a
real server is killed and restarted four times, each restart importing torch and loading the model again."""

from __future__ import annotations

import pytest

from tests.api.soak import check, run_soak

pytestmark = pytest.mark.slow


def test_soak_one_server(tiny_model, tmp_path):
    check(run_soak(tmp_path / "home", tiny_model, n_servers=1, workers=2, kills=4, seed=11),
          "one server, 2 workers, SQLite")
