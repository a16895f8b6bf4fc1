"""The job service every front end talks to: submit, get, list, cancel; workers run the jobs."""

from t2v.service.compose import build_services
from t2v.service.service import JobService

__all__ = ["JobService", "build_services"]
