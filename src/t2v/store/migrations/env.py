"""Alembic environment for t2v.

At runtime :func:`t2v.store.db.upgrade` passes an open connection (already inside a
transaction) in ``config.attributes["connection"]``; no alembic.ini is needed. For
writing new revisions by hand, ``sqlalchemy.url`` in an alembic.ini also works.
"""

from __future__ import annotations

from alembic import context

from t2v.store.db import open_database
from t2v.store.tables import metadata

config = context.config
target_metadata = metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = open_database(config.get_main_option("sqlalchemy.url"), migrate=False)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
