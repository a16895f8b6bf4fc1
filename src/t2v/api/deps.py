"""FastAPI dependencies: the service, the caller's API key, rate limits, body size."""

from __future__ import annotations

import json
import math

from fastapi import Depends, HTTPException, Request

from t2v.api.responses import edge_error


def get_service(request: Request):
    return request.app.state.service


def base_url(request: Request) -> str:
    """Where links the server writes point: ``T2V_PUBLIC_URL`` when set, else the address the request was sent
    to (its ``Host``; with T2V_PUBLIC_URL or T2V_TRUSTED_HOSTS set, only a Host they allow gets this far)."""
    public = request.app.state.service.settings.public_url
    return public or str(request.base_url).rstrip("/")


def auth_enabled(service) -> bool:
    return service.access.has_keys()


def bearer_key(service, authorization: str):
    """The active key named by an ``Authorization: Bearer <key>`` header value, or None."""
    scheme, _, token = authorization.partition(" ")
    return service.access.authenticate(token) if scheme.lower() == "bearer" else None


def current_key(request: Request, service=Depends(get_service)):
    """None when the server runs without keys; else the caller's key (401 if missing or wrong)."""
    if not auth_enabled(service):
        return None
    key = bearer_key(service, request.headers.get("authorization", ""))
    if key is None:
        raise HTTPException(401, "missing or invalid API key: send Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})
    return key


def rate_limited(request: Request, key=Depends(current_key)):
    """Apply the key's rate limit (429 + Retry-After), counted in the database across all server processes."""
    if key is not None and key.rate_limit:
        wait = request.app.state.service.access.take_rate_token(key)
        if wait is not None:
            raise HTTPException(429, f"rate limit {key.rate_limit} exceeded", headers={"Retry-After": str(math.ceil(wait))})
    return key


TOO_LARGE = object()  # read_body's answer for a body over the limit


async def read_body(receive, limit: int):
    """An ASGI request's whole body, read up to ``limit`` bytes: :data:`TOO_LARGE` as soon as it passes the
    limit, None when the client goes away first."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return TOO_LARGE
        if not message.get("more_body", False):
            return bytes(body)


def replaying(body: bytes, receive):
    """An ASGI ``receive`` that hands the app ``body`` (already read) once, then what the client sends next
    (``http.disconnect``, when it comes)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BodySizeLimit:
    """ASGI middleware: 413 for request bodies over ``limit`` bytes, declared (Content-Length) or streamed (chunked).

    A body is read here in full, up to ``limit`` bytes, before the app sees the request: the app never
    starts on a body that turns out too large (it would answer 400 for a body cut short), and a body
    over the limit is answered 413 as soon as it passes it.
    """

    UPLOAD_PATHS = ("/v1/assets", "/v1/videos", "/openai/v1/videos", "/openai/v1/videos/extensions")

    def __init__(self, app, limit: int, *, upload_limit: int | None = None) -> None:
        self.app, self.limit, self.upload_limit = app, limit, upload_limit or limit

    def limit_for(self, scope, headers) -> int:
        """Multipart bodies to the upload routes (and Gradio's upload) may reach ``upload_limit``."""
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        path = scope.get("path", "")
        uploading = path in self.UPLOAD_PATHS or path.endswith("/gradio_api/upload")
        return self.upload_limit if media == b"multipart/form-data" and uploading else self.limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        limit = self.limit_for(scope, headers)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self.reject(scope, send)
        if declared is None and b"transfer-encoding" not in headers:  # no body to read
            return await self.app(scope, receive, send)
        body = await read_body(receive, limit)
        if body is None:  # the client went away before the body ended
            return
        if body is TOO_LARGE:
            return await self.reject(scope, send)
        await self.app(scope, replaying(body, receive), send)

    async def reject(self, scope, send):
        body = json.dumps(edge_error(scope.get("path", ""), 413, "request body too large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
