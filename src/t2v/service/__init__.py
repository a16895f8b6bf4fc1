"""The job service every front end talks to: submit, get, list, cancel; workers run the jobs."""

from t2v.service.service import JobService

__all__ = ["JobService"]
