"""t2v.client's exceptions: those of :mod:`t2v_client.errors`, each also a :class:`t2v.errors.T2VError`.

Where the library has a matching class the client's is also one of those (``InvalidRequest`` is a
:class:`t2v.errors.InvalidRequest`, ``NotFound`` a :class:`t2v.errors.JobNotFound`, ``RateLimited`` a
:class:`t2v.errors.QuotaExceeded`), so code that catches the library's errors catches the client's too. Each is
also the :mod:`t2v_client` class of its name, so code written for the standalone client catches them as well.
"""

from __future__ import annotations

from t2v_client import errors as client

from t2v import errors


class APIError(client.APIError, errors.T2VError):
    """An error answer from the server: ``status`` (HTTP code), ``detail`` (the body's ``detail``)."""


class ConnectionFailed(client.ConnectionFailed, APIError):
    """The server could not be reached, or the connection broke (after any retries)."""


class InvalidRequest(client.InvalidRequest, APIError, errors.InvalidRequest):
    """422 (or 400/413/415): the request was refused; ``field`` names the offending field when the server did."""


class Unauthorized(client.Unauthorized, APIError):
    """401 or 403: a missing, wrong or revoked API key, or a job of another key."""


class NotFound(client.NotFound, APIError, errors.JobNotFound):
    """404: no such job, asset or file (another key's job reads as missing)."""


class Conflict(client.Conflict, APIError, errors.Conflict):
    """409: not possible in the job's present state (e.g. its content before it has succeeded)."""


class RateLimited(client.RateLimited, APIError, errors.QuotaExceeded):
    """429: too many requests, queued jobs or open event streams; ``retry_after`` in seconds when given."""


class ServerUnavailable(client.ServerUnavailable, APIError):
    """503 (or another 5xx): the server cannot answer now; ``retry_after`` in seconds when given."""


class WaitTimeout(client.WaitTimeout, errors.T2VError):
    """``wait`` (or ``events(timeout=...)``) gave up: the job had not finished within the timeout."""


class Errors(client.Errors):
    """The classes above, for a client to raise (its ``errors``)."""

    APIError = APIError
    ConnectionFailed = ConnectionFailed
    InvalidRequest = InvalidRequest
    Unauthorized = Unauthorized
    NotFound = NotFound
    Conflict = Conflict
    RateLimited = RateLimited
    ServerUnavailable = ServerUnavailable
    WaitTimeout = WaitTimeout
