"""The numbers ``GET /metrics`` serves, kept and written by prometheus-client.

- ``t2v_jobs{status}`` and ``t2v_queue_depth`` are read from the database at each scrape (:class:`JobCounts`),
  so every process that shares the database reports the same, whole numbers.
- ``t2v_step_seconds`` and ``t2v_generation_seconds`` (summaries: ``_count`` and ``_sum``) count the jobs that
  ran in this process. Where several processes serve one deployment (``uvicorn --workers N``, gunicorn), set
  ``PROMETHEUS_MULTIPROC_DIR`` to a folder they share, empty when they start (prometheus-client's
  multiprocess mode: each process writes its numbers there, and a scrape of any process adds up all of
  them). It must be set in the environment before the processes start.

Without prometheus-client (the ``serve`` extra) nothing is recorded, and :meth:`Metrics.exposition` says what
to install.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from t2v.extras import install_hint

#: The environment variable of prometheus-client's multiprocess mode (and its older lower-case spelling).
MULTIPROC_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def multiprocess_dir() -> str | None:
    """The folder of prometheus-client's multiprocess mode, when it is on (it reads the same variable)."""
    return next((os.environ[name] for name in MULTIPROC_ENV if os.environ.get(name)), None)


class JobCounts:
    """A prometheus-client collector: jobs per status and the queue's depth, from the database at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]], statuses: Sequence[str]) -> None:
        self.counts, self.statuses = counts, tuple(statuses)

    def describe(self) -> list:
        return []  # nothing to check at registration: a scrape reads the database, registering must not

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily  # deferred: the serve extra

        counts = self.counts()
        jobs = GaugeMetricFamily("t2v_jobs", "Jobs by status.", labels=["status"])
        for status in self.statuses:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("t2v_queue_depth", "Queued jobs.", value=counts.get("queued", 0))


class Metrics:
    """This process's job timings, and the scrape of them with the database's job counts."""

    def __init__(self, counts: Callable[[], dict[str, int]], statuses: Sequence[str]) -> None:
        self.jobs = JobCounts(counts, statuses)
        try:
            from prometheus_client import CollectorRegistry, Summary  # deferred: the serve extra
        except ImportError:
            self.registry = None
            return
        # A registry of this service's own (not the process-wide default one): each service counts its jobs.
        self.registry = CollectorRegistry()
        self.generation = Summary("t2v_generation_seconds", "Job run time, start to files written.",
                                  registry=self.registry)
        self.step = Summary("t2v_step_seconds", "Denoising step time.", registry=self.registry)
        self.registry.register(self.jobs)

    def observe_job(self, seconds: float, record: dict[str, Any]) -> None:
        """Count a finished job: its run time, and its denoising steps (those run, not resumed from a checkpoint)."""
        if self.registry is None:
            return
        self.generation.observe(seconds)
        steps = int(record.get("num_inference_steps") or 0) - int(record.get("resumed_from_step") or 0)
        if steps > 0 and "post_history" not in record:  # a post job's record holds its source's steps
            per_step = float(record.get("timings", {}).get("denoise_s", 0.0)) / steps
            for _ in range(steps):  # a summary counts one observation at a time
                self.step.observe(per_step)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """``(body, content type)`` of a scrape, in the format ``accept`` asks for (Prometheus text by default,
        OpenMetrics on request). Reads the database."""
        if self.registry is None:
            raise RuntimeError(f"/metrics needs prometheus-client: {install_hint('serve')}")
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = self.registry
        if (folder := multiprocess_dir()) is not None:  # every process's timings, from the shared folder
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=folder)
            registry.register(self.jobs)
        encode, content_type = choose_encoder(accept or "")
        return encode(registry), content_type
