"""Gradio's upload routes on a page with an image field: only checked images land in Gradio's cache.

The page's one upload field is the first frame (image-to-video). Gradio stores whatever its upload routes
are sent, from anyone who reaches them (the browser's upload carries no API key), so :func:`guard_uploads`
puts a check in front of them: a body of at most one image's size plus form overhead, one file, and that
file a PNG, JPEG or WebP image that passes :func:`t2v.inputs.check_image_bytes`. Anything else is answered
4xx and never reaches Gradio. What passes is stored by Gradio under a folder named by a keyed hash of its
bytes (not guessable from outside) and removed with the rest of its cache; the job's copy is the asset.

Since the route needs no key, it must not let anyone stall or fill the server: the image check (a full decode)
runs in a worker thread, at most :data:`CHECKS_AT_ONCE` at a time, never on the event loop that serves the API
and the event streams; and once the uploads kept in Gradio's cache reach :data:`UPLOAD_SPACE_BYTES`, further
uploads are answered 503 until Gradio's cache clean-up removes old ones.

:func:`refuse_url_files` closes the other way in: a file value the browser sends to an event as a URL, which
Gradio would download before any t2v handler (and its key check) runs.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Mount, Route

from t2v.ui.files import PREFIX, UPLOAD_ROUTES
from t2v.errors import InvalidRequest

CHECKED = "t2v.upload_checked"
FORM_OVERHEAD = 64 * 1024
CHECKS_AT_ONCE = 2  # image checks running in threads at once (the rest wait their turn)
UPLOAD_SPACE_BYTES = 1024 * 2**20  # uploads kept in Gradio's cache (the page's own copies not counted)


class _Guard(Route):
    """Matches Gradio's upload paths until the request has been checked (then Gradio's own route takes it)."""

    def matches(self, scope):
        if scope.get(CHECKED):
            return Match.NONE, {}
        return super().matches(scope)


def guard_uploads(app, blocks) -> None:
    """Check every upload to the page ``blocks`` mounted on ``app`` (see the module's docstring)."""
    mounted = [r.app for r in app.router.routes if isinstance(r, Mount) and getattr(r.app, "blocks", None) is blocks]
    if not mounted:
        raise RuntimeError("guard_uploads: the page is not mounted on this app")
    for gradio_app in mounted:
        check = ImageUploadCheck(gradio_app.router, blocks.GRADIO_CACHE)
        for path in reversed(UPLOAD_ROUTES):  # first in the list: matched before Gradio's own routes
            gradio_app.router.routes.insert(0, _Guard(path, check, methods=["POST", "PUT"]))


class ImageUploadCheck:
    """ASGI app: read the body (bounded), check its one file, then hand the request on to ``router``."""

    def __init__(self, router, cache_dir: str | Path | None = None) -> None:
        self.router = router
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.turns: asyncio.Semaphore | None = None  # made on the serving loop, at the first upload

    async def __call__(self, scope, receive, send) -> None:
        from t2v import inputs  # deferred: imports numpy
        from t2v.api.deps import TOO_LARGE, read_body, replaying  # deferred: imports fastapi

        limit = inputs.MAX_IMAGE_BYTES + FORM_OVERHEAD
        body = await read_body(receive, limit)
        if body is None:
            return  # the client went away
        if body is TOO_LARGE:
            return await _refuse(scope, send, 413, f"uploads are one image of at most "
                                                   f"{inputs.MAX_IMAGE_BYTES / 2**20:g} MiB")
        if self.cache_dir is not None and uploads_size(self.cache_dir) + len(body) > UPLOAD_SPACE_BYTES:
            return await _refuse(scope, send, 503, "the server's space for uploaded images is full: try again later")
        self.turns = self.turns or asyncio.Semaphore(CHECKS_AT_ONCE)
        async with self.turns:
            problem = await self.problem(scope, body)
        if problem:
            return await _refuse(scope, send, *problem)
        await self.router({**scope, CHECKED: True}, replaying(body, receive), send)

    @staticmethod
    async def problem(scope, body: bytes) -> tuple[int, str] | None:
        """None when the body is a form holding exactly one acceptable image; else (status, message)."""
        from starlette.concurrency import run_in_threadpool
        from starlette.datastructures import UploadFile

        from t2v.inputs import check_image_bytes  # deferred: imports numpy

        async def once():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form(max_files=1, max_fields=0)
        except Exception:  # not a form, a malformed one, or more than one file
            return 400, "uploads are one image file sent as multipart/form-data"
        try:
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            if len(files) != 1:
                return 400, "uploads are one image file sent as multipart/form-data"
            try:
                await run_in_threadpool(check_image_bytes, await files[0].read(), name="the uploaded file",
                                        field="image")
            except InvalidRequest as e:
                return 415, str(e).removeprefix("image: ")
        finally:
            await form.close()
        return None


async def _refuse(scope, send, status: int, message: str) -> None:
    async def nothing():
        return {"type": "http.disconnect"}

    await JSONResponse({"detail": message}, status_code=status)(scope, nothing, send)


def uploads_size(cache_dir: Path) -> int:
    """Bytes of the uploads in Gradio's cache ``cache_dir``: every file except the page's own copies (the
    folders :class:`t2v.ui.files.PrivateCopies` makes)."""
    total = 0
    for root, dirs, files in os.walk(cache_dir):
        if root == str(cache_dir):
            dirs[:] = [d for d in dirs if not d.startswith(PREFIX)]
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def refuse_url_files(gr, blocks) -> None:
    """Make every component of ``blocks`` refuse a file value given as an http(s) URL. Gradio would fetch such a
    value (any public address, of any size) while preparing an event's inputs, before the handler runs and
    checks the caller's key; t2v's page only ever sends files it uploaded."""
    for block in blocks.blocks.values():
        if isinstance(block, gr.components.Component):
            block.async_move_resource_to_block_cache = _local_only(gr, block.async_move_resource_to_block_cache)


def _local_only(gr, move):
    async def local_only(url_or_file_path):
        if isinstance(url_or_file_path, str) and url_or_file_path.lower().startswith(("http://", "https://")):
            raise gr.Error("files are uploaded to this page, not given as URLs", print_exception=False)
        return await move(url_or_file_path)

    return local_only
