"""The composition root: :func:`build_services` wires a :class:`~t2v.service.JobService` to its ports
(:mod:`t2v.service.ports`) from the settings. Front ends build their service here."""

from __future__ import annotations

from t2v.errors import InvalidRequest
from t2v.settings import Settings, get_settings

EXECUTORS = ("threads", "ray")


def build_executor(settings: Settings, *, workers: int | None = None, executor: str | None = None,
                   no_workers: bool = False, database_url: str | None = None):
    """The executor ``settings.executor`` (or ``executor``) names, with ``workers`` workers (threads: 1 by
    default; Ray: one per GPU slot by default); none with ``no_workers``."""
    from t2v.service.executors import NoExecutor, ThreadExecutor

    kind = executor or settings.executor
    if kind not in EXECUTORS:
        raise InvalidRequest(f"executor: must be one of {', '.join(EXECUTORS)}, not {kind!r}", field="executor")
    if workers is not None and workers < 1:
        raise InvalidRequest(f"workers: must be at least 1 (or --no-workers), not {workers}", field="workers")
    if no_workers:
        return NoExecutor()
    if kind == "ray":
        from t2v.service.executors.ray import RayExecutor

        return RayExecutor(settings, workers=workers, database_url=database_url)
    return ThreadExecutor(workers or 1)


def build_services(settings: Settings | None = None, *, workers: int | None = None, executor: str | None = None,
                   no_workers: bool = False, database_url: str | None = None):
    """A JobService over the settings' job store (T2V_DATABASE_URL, default SQLite in T2V_HOME), artifact store
    (T2V_STORAGE_URL, default the folders in T2V_HOME) and executor (T2V_EXECUTOR). Unreachable storage or Ray
    cluster raises here, before a server binds its port."""
    from t2v.service.service import JobService
    from t2v.store import Repository, default_database_url, open_database
    from t2v.store.artifacts import open_artifacts

    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url = database_url or default_database_url(settings)
    chosen = build_executor(settings, workers=workers, executor=executor, no_workers=no_workers, database_url=url)
    if hasattr(chosen, "connect"):
        chosen.connect()
    return JobService(settings, store=Repository(open_database(url)), artifacts=open_artifacts(settings),
                      executor=chosen)
