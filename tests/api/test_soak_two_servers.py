"""The soak on two servers over one PostgreSQL database: jobs from many clients while either server is SIGKILLed
and restarted at random; the other keeps serving. Nothing lost, nothing run twice, every video whole, nothing
left over (tests/api/soak.py): 50 jobs from 10 clients through 6 kills.

Adds about 3 minutes to the suite: 50 jobs while the servers are killed and restarted six times, each restart
importing torch and loading the model again."""

from __future__ import annotations

import pytest

from tests.api.soak import check, run_soak

pytestmark = pytest.mark.slow


def test_soak_two_servers_on_one_database(tiny_model, tmp_path, pg_database):
    check(run_soak(tmp_path / "home", tiny_model, n_servers=2, seed=13, kills=6, database_url=pg_database),
          "two servers, PostgreSQL")
