"""Executors (see :mod:`t2v.service.ports`): worker threads here, Ray actors, or none."""

from __future__ import annotations

from t2v.service.executors.threads import NoExecutor, ThreadExecutor

__all__ = ["NoExecutor", "ThreadExecutor"]
