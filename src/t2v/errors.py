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


class UnknownModel(InvalidRequest):
    """A model name that is no registered id or alias, no existing folder and no hub id: a bad value of the
    request's ``model`` (the message names the nearest registered ids)."""


class DoesNotFit(InvalidRequest):
    """No memory plan is predicted to fit the request in the memory budget. At submit this refuses the
    request; for a job admitted earlier it means other work holds the memory now (a service retries it)."""


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


class Conflict(T2VError):
    """The job is not in a state the change applies to (pausing a finished job, changing a running one);
    ``field`` names what the change was to (``status`` for a pause or resume, else the request field)."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class QuotaExceeded(T2VError):
    """Too many queued jobs for this key, or too many requests."""

    exit_code = 2

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def out_of_resources(exc: BaseException) -> bool:
    """A failure of the machine, not of the request: a library that failed to import, memory that ran out
    (MemoryError, torch.OutOfMemoryError), or memory taken by other work (:class:`DoesNotFit` for a job that
    fitted when it was admitted). The same request may succeed on another try."""
    return isinstance(exc, (ImportError, MemoryError, DoesNotFit)) or type(exc).__name__ == "OutOfMemoryError"
