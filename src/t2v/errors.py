"""One error hierarchy for the whole library.

Front ends map these to exit codes / HTTP statuses: ``InvalidRequest`` and
``ModelUnavailable`` are the user's to fix (exit 2, HTTP 4xx), ``Cancelled`` is
an interruption (exit 130), everything else is a runtime failure (exit 1).
"""

from __future__ import annotations


class T2VError(Exception):
    """Base class of every error t2v raises on purpose."""

    exit_code = 1


class InvalidRequest(T2VError, ValueError):
    """A request, flag or file the user gave is not acceptable."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class ModelUnavailable(T2VError):
    """The model cannot be found, downloaded or loaded."""

    exit_code = 2


class ExportError(T2VError):
    """Writing an output file failed."""

    exit_code = 1


class OutputNotWritable(ExportError, InvalidRequest):
    """The output path cannot be written; the user's to fix."""

    exit_code = 2


class Cancelled(T2VError):
    """The caller asked to stop (``should_cancel`` returned True, or Ctrl-C)."""

    exit_code = 130


class JobNotFound(T2VError):
    """No job with that id."""

    exit_code = 2


class Forbidden(T2VError):
    """The job belongs to another API key."""

    exit_code = 2


class QuotaExceeded(T2VError):
    """Too many queued jobs for this key, or too many requests."""

    exit_code = 2

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after
