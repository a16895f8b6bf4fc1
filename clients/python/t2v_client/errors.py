"""The client's exceptions, mapped from the API's status codes and error bodies.

Every exception the client raises on purpose is a :class:`ClientError`; those from a server's answer are
:class:`APIError` with ``status`` (the HTTP code) and ``detail`` (the body's ``detail``). A client raises the
classes its :class:`Errors` names: an application may name subclasses there, so that handlers written for its
own exceptions catch the client's too (``t2v.client`` does this for :mod:`t2v.errors`).
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base class of every error the client raises on purpose."""


class APIError(ClientError):
    """An error answer from the server: ``status`` (HTTP code), ``detail`` (the body's ``detail``)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        Exception.__init__(self, message)
        self.status, self.detail = status, detail


class ConnectionFailed(APIError):
    """The server could not be reached, or the connection broke (after any retries)."""


class InvalidRequest(APIError, ValueError):
    """422 (or 400/413/415): the request was refused; ``field`` names the offending field when the server did."""

    def __init__(self, message: str, *, status: int | None = 422, detail: Any = None, field: str | None = None) -> None:
        APIError.__init__(self, message, status=status, detail=detail)
        self.field = field


class Unauthorized(APIError):
    """401 or 403: a missing, wrong or revoked API key, or a job of another key."""


class NotFound(APIError):
    """404: no such job, asset or file (another key's job reads as missing)."""


class Conflict(APIError):
    """409: not possible in the job's present state (e.g. its content before it has succeeded); ``field`` names
    what the change was to when the server did (``status`` for a pause or resume, else the request field)."""

    def __init__(self, message: str, *, status: int | None = 409, detail: Any = None, field: str | None = None) -> None:
        APIError.__init__(self, message, status=status, detail=detail)
        self.field = field


class RateLimited(APIError):
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


class WaitTimeout(ClientError, TimeoutError):
    """``wait`` (or ``events(timeout=...)``) gave up: the job had not finished within the timeout."""


class Errors:
    """The exception classes a client raises (its ``errors`` attribute). A subclass that names subclasses of
    these makes the client raise those instead; the client's own handling (retries, polling) goes by the
    classes above, so it works the same."""

    APIError: type[APIError] = APIError
    ConnectionFailed: type[ConnectionFailed] = ConnectionFailed
    InvalidRequest: type[InvalidRequest] = InvalidRequest
    Unauthorized: type[Unauthorized] = Unauthorized
    NotFound: type[NotFound] = NotFound
    Conflict: type[Conflict] = Conflict
    RateLimited: type[RateLimited] = RateLimited
    ServerUnavailable: type[ServerUnavailable] = ServerUnavailable
    WaitTimeout: type[WaitTimeout] = WaitTimeout

    @classmethod
    def from_response(cls, status: int, headers: Any, body: Any) -> APIError:
        """The exception for an error answer: ``body`` is the parsed JSON (or text) of the response."""
        detail = body.get("detail", body) if isinstance(body, dict) else body
        message, field = describe(detail)
        text = f"HTTP {status}: {message}"
        if status in (400, 413, 415, 422):
            return cls.InvalidRequest(text, status=status, detail=detail, field=field)
        if status in (401, 403):
            return cls.Unauthorized(text, status=status, detail=detail)
        if status == 404:
            return cls.NotFound(text, status=status, detail=detail)
        if status == 409:
            return cls.Conflict(text, status=status, detail=detail, field=field)
        if status == 429:
            return cls.RateLimited(text, status=status, detail=detail, retry_after=retry_after(headers))
        if status >= 500:
            return cls.ServerUnavailable(text, status=status, detail=detail, retry_after=retry_after(headers))
        return cls.APIError(text, status=status, detail=detail)


def retry_after(headers: Any) -> float | None:
    """``Retry-After`` in seconds (the API sends whole seconds; an HTTP date is not used by it)."""
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def describe(detail: Any) -> tuple[str, str | None]:
    """(message, field) from a ``detail``: a string, or FastAPI's list of ``{loc, msg}`` (field: loc's last name)."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(p) for p in first.get("loc") or [] if not isinstance(p, int)]
        field = loc[-1] if loc and loc[-1] not in ("body", "query", "request") else None
        return "; ".join(line_of(d) for d in detail if isinstance(d, dict)), field
    return str(detail), None


def line_of(item: dict) -> str:
    where = ".".join(str(p) for p in (item.get("loc") or [])[1:])
    msg = str(item.get("msg", ""))
    return msg if not where or msg.startswith(where) else f"{where}: {msg}"
