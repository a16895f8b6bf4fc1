"""Typed results of the t2v REST API: the server's own response types (:mod:`t2v.contract`), plus the events
of a job's stream."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from t2v.contract import (FINISHED, Asset, Job, JobFile, JobPage, JobResult, Model, ModelList, Progress, RecordPage,
                          Result)

__all__ = ["Asset", "Event", "Job", "JobFile", "JobPage", "JobResult", "Model", "ModelList", "Progress", "RecordPage"]


class Event(Result):
    """One Server-Sent Event of ``/v1/videos/{id}/events``.

    ``event`` is ``progress``, a final status (``succeeded``, ``failed``, ``cancelled``) or ``error``;
    ``job`` is the job's state (None for ``error``, whose ``data`` holds the detail). ``id`` is the
    server's event id when it sends one, else one derived from the state, so a resumed stream can skip
    the event it already delivered.
    """

    event: str
    id: str
    data: dict[str, Any] = Field(default_factory=dict)
    job: Job | None = None

    @property
    def final(self) -> bool:
        return self.event in FINISHED or self.event == "error"
