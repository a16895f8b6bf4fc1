"""Gradio's upload routes on a page with an image field: only checked images land in Gradio's cache.

The page's one upload field is the first frame (image-to-video). Gradio stores whatever its upload routes
are sent, from anyone who reaches them (the browser's upload carries no API key), so :func:`guard_uploads`
puts a check in front of them: a body of at most one image's size plus form overhead, one file, and that
file a PNG, JPEG or WebP image that passes :func:`t2v.inputs.check_image_bytes`. Anything else is answered
4xx and never reaches Gradio. What passes is stored by Gradio under a folder named by a keyed hash of its
bytes (not guessable from outside) and removed with the rest of its cache; the job's copy is the asset.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Mount, Route

from t2v.ui.files import UPLOAD_ROUTES

CHECKED = "t2v.upload_checked"
FORM_OVERHEAD = 64 * 1024


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
        check = ImageUploadCheck(gradio_app.router)
        for path in reversed(UPLOAD_ROUTES):  # first in the list: matched before Gradio's own routes
            gradio_app.router.routes.insert(0, _Guard(path, check, methods=["POST", "PUT"]))


class ImageUploadCheck:
    """ASGI app: read the body (bounded), check its one file, then hand the request on to ``router``."""

    def __init__(self, router) -> None:
        self.router = router

    async def __call__(self, scope, receive, send) -> None:
        from t2v import inputs
        from t2v.api.deps import TOO_LARGE, read_body, replaying

        limit = inputs.MAX_IMAGE_BYTES + FORM_OVERHEAD
        body = await read_body(receive, limit)
        if body is None:
            return  # the client went away
        if body is TOO_LARGE:
            return await _refuse(scope, send, 413, f"uploads are one image of at most "
                                                   f"{inputs.MAX_IMAGE_BYTES / 2**20:g} MiB")
        problem = await self.problem(scope, body)
        if problem:
            return await _refuse(scope, send, *problem)
        await self.router({**scope, CHECKED: True}, replaying(body, receive), send)

    @staticmethod
    async def problem(scope, body: bytes) -> tuple[int, str] | None:
        """None when the body is a form holding exactly one acceptable image; else (status, message)."""
        from starlette.datastructures import UploadFile

        from t2v.errors import InvalidRequest
        from t2v.inputs import check_image_bytes

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
                check_image_bytes(await files[0].read(), name="the uploaded file", field="image")
            except InvalidRequest as e:
                return 415, str(e).removeprefix("image: ")
        finally:
            await form.close()
        return None


async def _refuse(scope, send, status: int, message: str) -> None:
    async def nothing():
        return {"type": "http.disconnect"}

    await JSONResponse({"detail": message}, status_code=status)(scope, nothing, send)
