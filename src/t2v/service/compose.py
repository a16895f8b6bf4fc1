"""The composition root: :func:`build_services` is the one place that opens a service's ports
(:mod:`t2v.service.ports`: the job store, the artifact store, the executor) from the settings and wires them into a
:class:`~t2v.service.JobService`. Every front end, worker process and Ray actor builds its service here."""

from __future__ import annotations

import logging
from typing import Any, Callable

from t2v.errors import InvalidRequest
from t2v.families import get_family
from t2v.models.allowlist import is_present
from t2v.service.executors import NoExecutor, ThreadExecutor
from t2v.service.executors.ray import RayExecutor
from t2v.service.ports import Executor
from t2v.service.service import JobService
from t2v.runtime import Runtime, install
from t2v.settings import Settings, get_settings
from t2v.store import Repository, default_database_url, open_database
from t2v.store.artifacts import open_artifacts

logger = logging.getLogger(__name__)
PRESENT_DEFAULT = "t2v-shapes"  # shipped in the package: the default when nobody chose one and the registry's is absent


def threads_executor(settings: Settings, *, workers: int | None, database_url: str,
                     where: dict[str, Any] | None) -> Executor:
    """Worker threads in this process (1 by default)."""
    return ThreadExecutor(workers or 1, where=where)


def ray_executor(settings: Settings, *, workers: int | None, database_url: str,
                 where: dict[str, Any] | None) -> Executor:
    """Ray actors across the cluster (one per GPU slot by default), each building its own service here."""
    return RayExecutor(settings, workers=workers, database_url=database_url, build=build_services)


#: T2V_EXECUTOR (``--executor``) -> the executor it builds.
EXECUTORS: dict[str, Callable[..., Executor]] = {"threads": threads_executor, "ray": ray_executor}


def build_executor(settings: Settings, *, workers: int | None = None, executor: str | None = None,
                   no_workers: bool = False, database_url: str | None = None,
                   where: dict[str, Any] | None = None) -> Executor:
    """The executor ``settings.executor`` (or ``executor``) names, with ``workers`` workers; none with
    ``no_workers``. ``where``: what local workers add to their jobs' ``ran_on`` (a Ray actor's node and name)."""
    kind = executor or settings.executor
    if kind not in EXECUTORS:
        raise InvalidRequest(f"executor: must be one of {', '.join(EXECUTORS)}, not {kind!r}", field="executor")
    if workers is not None and workers < 1:
        raise InvalidRequest(f"workers: must be at least 1 (or --no-workers), not {workers}", field="workers")
    if no_workers:
        return NoExecutor()
    return EXECUTORS[kind](settings, workers=workers, database_url=database_url or default_database_url(settings),
                           where=where)


def build_services(settings: Settings | None = None, *, workers: int | None = None, executor: str | None = None,
                   no_workers: bool = False, database_url: str | None = None, where: dict[str, Any] | None = None,
                   service_class: type[JobService] = JobService) -> JobService:
    """A JobService (or ``service_class``, a subclass) over the settings' job store (``database_url``, else
    T2V_DATABASE_URL, default SQLite in T2V_HOME), artifact store (T2V_STORAGE_URL, default the folders in T2V_HOME)
    and executor (see :func:`build_executor`). Unreachable storage or Ray cluster raises here, before a server binds
    its port. The process's :class:`~t2v.runtime.Runtime` (its loaded models and other caches) is made here too,
    from the same settings, and installed for the jobs this process runs."""
    settings = settings or get_settings()
    settings.record_paths = False  # a service's records name its own model folders, never their paths
    if "default_model" not in settings.model_fields_set and not is_present(settings.default_model, settings, get_family):
        # nobody chose a model and the registry's default is not here: the pages open on one that runs
        logger.info("%s is not downloaded here: the default model is %s", settings.default_model, PRESENT_DEFAULT)
        settings.default_model = PRESENT_DEFAULT
    settings.home.mkdir(parents=True, exist_ok=True)
    url = database_url or default_database_url(settings)
    chosen = build_executor(settings, workers=workers, executor=executor, no_workers=no_workers, database_url=url,
                            where=where)
    if hasattr(chosen, "connect"):
        chosen.connect()
    runtime = Runtime(settings)
    service = service_class(settings, store=Repository(open_database(url)), artifacts=open_artifacts(settings),
                            executor=chosen, runtime=runtime)
    install(runtime)
    return service
