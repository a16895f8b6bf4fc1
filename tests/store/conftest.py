"""Fixtures for the store tests: every test runs on SQLite and on a real PostgreSQL (tests/pgserver.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request, tmp_path) -> str:
    """A URL of an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 't2v.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def engine(engine_url):
    from t2v.store import open_database

    eng = open_database(engine_url)
    yield eng
    eng.dispose()


@pytest.fixture
def repo(engine):
    from t2v.store import Repository

    return Repository(engine)
