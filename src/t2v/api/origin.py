"""What keeps a server without API keys to its own machine's users, browsers included.

`t2v serve` without keys binds only a loopback address, but a browser on that machine lets any web page it
visits reach 127.0.0.1: a form it submits is a "simple" cross-site request (no preflight), so it would queue a
job (CSRF); and with DNS rebinding (the attacker's host name re-pointed at 127.0.0.1) its scripts could read
the answers too. :class:`KeylessGuard` closes both while the server has no keys:

- a request that changes something (POST, PUT, PATCH, DELETE) whose ``Origin`` header names another site than
  the ``Host`` it was sent to is answered 403 (pages served by this server, and clients that send no
  ``Origin`` such as the CLI, curl and httpx, pass);
- with ``loopback_hosts`` (what `t2v serve` passes when it binds a loopback address), a request whose ``Host`` is not a
  loopback name or address (``localhost``, ``127.0.0.1``, ``[::1]``, any port) is answered 400.

With keys, neither applies: every request must carry a key in its ``Authorization`` header (or the page's key
box), which a cross-site page can neither send without a CORS preflight (refused: t2v sends no CORS headers)
nor know. The server's key state is read from the database, as the key checks do, and only for a request the
guard would refuse.

:class:`TrustedHosts` answers 400 to a ``Host`` other than those T2V_PUBLIC_URL and T2V_TRUSTED_HOSTS name (and
loopback), keys or not, as Starlette's ``TrustedHostMiddleware`` does, but with the API's JSON error body.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse

from t2v.api.responses import edge_error
from t2v.service.netguard import is_loopback

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """The name or address in a ``Host`` header value, without the port or IPv6 brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class KeylessGuard:
    """ASGI middleware: see the module's docstring. ``has_keys()`` tells whether the server runs with keys."""

    def __init__(self, app, has_keys, *, loopback_hosts: bool = False) -> None:
        self.app, self.has_keys, self.loopback_hosts = app, has_keys, loopback_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        problem = None
        if self.loopback_hosts and not is_loopback(host_name(host).lower()):
            problem = 400, (f"this server runs without API keys and answers only requests to a loopback address "
                            f"(localhost, 127.0.0.1, [::1]), not to Host {host!r}")
        elif (scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS) and "origin" in headers:
            origin = headers["origin"]
            if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
                problem = 403, (f"cross-site request refused: Origin {origin!r} is not this server ({host!r}); "
                                "a server without API keys takes changes only from its own pages and from clients "
                                "that send no Origin")
        if problem is None or self.has_keys():
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await JSONResponse(edge_error(scope.get("path", ""), *problem), status_code=problem[0])(scope, receive, send)


class TrustedHosts:
    """ASGI middleware: a request whose ``Host`` is none of ``allowed_hosts`` is answered 400 (a websocket is
    closed). A pattern ``*.example.com`` matches the subdomains of example.com; ``*`` matches any host."""

    def __init__(self, app, allowed_hosts: list[str]) -> None:
        self.app, self.allowed = app, [h.lower() for h in allowed_hosts]

    def allows(self, host: str) -> bool:
        return any(p == "*" or host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in self.allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k.lower() == b"host"), "")
        if host and self.allows(host_name(host).lower()):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        detail = f"Host {host!r} is not one this server answers (T2V_PUBLIC_URL, T2V_TRUSTED_HOSTS)"
        await JSONResponse(edge_error(scope.get("path", ""), 400, detail), status_code=400)(scope, receive, send)
