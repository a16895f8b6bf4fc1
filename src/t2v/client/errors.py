"""The client's exceptions, mapped from the API's status codes and error bodies.

Each is a :class:`t2v.errors.T2VError`; where the library has a matching class the client's is also one
of those (``InvalidRequest`` is a :class:`t2v.errors.InvalidRequest`, ``NotFound`` a
:class:`t2v.errors.JobNotFound`, ``RateLimited`` a :class:`t2v.errors.QuotaExceeded`), so code that
catches the library's errors catches the client's too.
"""

from __future__ import annotations

from typing import Any

from t2v import errors


class APIError(errors.T2VError):
    """An error answer from the server: ``status`` (HTTP code), ``detail`` (the body's ``detail``)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        errors.T2VError.__init__(self, message)
        self.status, self.detail = status, detail


class ConnectionFailed(APIError):
    """The server could not be reached, or the connection broke (after any retries)."""


class InvalidRequest(APIError, errors.InvalidRequest):
    """422 (or 400/413/415): the request was refused; ``field`` names the offending field when the server did."""

    def __init__(self, message: str, *, status: int | None = 422, detail: Any = None, field: str | None = None) -> None:
        APIError.__init__(self, message, status=status, detail=detail)
        self.field = field


class Unauthorized(APIError):
    """401 or 403: a missing, wrong or revoked API key, or a job of another key."""


class NotFound(APIError, errors.JobNotFound):
    """404: no such job, asset or file (another key's job reads as missing)."""


class Conflict(APIError):
    """409: not possible in the job's present state (e.g. its content before it has succeeded)."""


class RateLimited(APIError, errors.QuotaExceeded):
    """429: too many requests, queued jobs or open event streams; ``retry_after`` in seconds when given."""

    def __init__(self, message: str, *, status: int | None = 429, detail: Any = None,
                 retry_after: float | None = None) -> None:
        APIError.__init__(self, message, status=status, detail=detail)
        self.retry_after = retry_after


class ServerUnavailable(APIError):
    """503 (or another 5xx): the server cannot answer now; ``retry_after`` in seconds when given."""

    def __init__(self, message: str, *, status: int | None = 503, detail: Any = None,
                 retry_after: float | None = None) -> None:
        APIError.__init__(self, message, status=status, detail=detail)
        self.retry_after = retry_after


def retry_after(headers) -> float | None:
    """``Retry-After`` in seconds (the API sends whole seconds; an HTTP date is not used by it)."""
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_from(status: int, headers, body: Any) -> APIError:
    """The exception for an error answer: ``body`` is the parsed JSON (or text) of the response."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    message, field = _message(detail)
    text = f"HTTP {status}: {message}"
    if status in (400, 413, 415, 422):
        return InvalidRequest(text, status=status, detail=detail, field=field)
    if status in (401, 403):
        return Unauthorized(text, status=status, detail=detail)
    if status == 404:
        return NotFound(text, status=status, detail=detail)
    if status == 409:
        return Conflict(text, status=status, detail=detail)
    if status == 429:
        return RateLimited(text, status=status, detail=detail, retry_after=retry_after(headers))
    if status >= 500:
        return ServerUnavailable(text, status=status, detail=detail, retry_after=retry_after(headers))
    return APIError(text, status=status, detail=detail)


def _message(detail: Any) -> tuple[str, str | None]:
    """(message, field) from a ``detail``: a string, or FastAPI's list of ``{loc, msg}`` (field: loc's last name)."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(p) for p in first.get("loc") or [] if not isinstance(p, int)]
        field = loc[-1] if loc and loc[-1] not in ("body", "query", "request") else None
        return "; ".join(_line(d) for d in detail if isinstance(d, dict)), field
    return str(detail), None


def _line(item: dict) -> str:
    where = ".".join(str(p) for p in (item.get("loc") or [])[1:])
    msg = str(item.get("msg", ""))
    return msg if not where or msg.startswith(where) else f"{where}: {msg}"


class WaitTimeout(errors.T2VError, TimeoutError):
    """``wait`` gave up: the job had not finished within the timeout."""
