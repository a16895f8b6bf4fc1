"""Gradio's upload routes on a page with image and video fields: only checked images (re-encoded) and checked
clips, from callers the server knows, kept for minutes.

The page's upload fields are the first and last frames, the VACE reference images (images) and the control and
mask videos (clips). Gradio stores whatever its upload routes are sent, so :func:`guard_uploads` puts a check in
front of them:

- **Who.** On a server with API keys an upload needs a key: the page's key box sets a same-site cookie
  (:data:`KEY_COOKIE`) that the browser sends with its uploads (an ``Authorization: Bearer`` header works too);
  no valid key, 401. The upload takes one of the key's rate tokens (429 past its rate). On a server without
  keys the caller is its client address.
- **How much.** A body of at most :data:`MAX_CLIP_BYTES` plus form overhead, one file: a PNG, JPEG or WebP
  image that passes :func:`t2v.inputs.check_image_bytes`, or an mp4, webm or gif clip of at most
  :data:`MAX_CLIP_BYTES` that passes :func:`t2v.inputs.check_video_bytes` (every frame decoded, at most
  :data:`MAX_CLIP_FRAMES`); at most :data:`UPLOADS_PER_CALLER` uploads of one key or client
  kept at once (429 past it), and :data:`UPLOAD_SPACE_BYTES` in all (503 past it).
- **What lands.** An image re-encoded as a PNG of its pixels (:func:`t2v.inputs.clean_image_bytes`): metadata,
  private chunks and trailing bytes never reach the disk. A clip lands as sent (re-encoding would change a
  control clip's pixels and blur a mask's edges); it is read back only by the key that sent it (below).
- **For how long.** Uploads are removed :data:`UPLOAD_TTL_S` after they were made or last used by a job (the
  job's copy is its asset, kept with the job); a sweep runs at every upload and every :data:`SWEEP_EVERY_S`.
- **Who reads it back.** ``/gradio_api/file=`` serves an upload only to the key that made it (404 otherwise) on
  a server with keys.

The image check (a full decode) runs in a worker thread, at most :data:`CHECKS_AT_ONCE` at a time, never on
the event loop that serves the API and the event streams.

:func:`refuse_url_files` closes the other way in: a file value the browser sends to an event as a URL, which
Gradio would download before any t2v handler (and its key check) runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Mount, Route

from t2v.ui.files import PREFIX, UPLOAD_ROUTES
from t2v.errors import InvalidRequest

CHECKED = "t2v.upload_checked"
FORM_OVERHEAD = 64 * 1024
CHECKS_AT_ONCE = 2  # image checks running in threads at once (the rest wait their turn)
UPLOAD_SPACE_BYTES = 1024 * 2**20  # uploads kept in Gradio's cache (the page's own copies not counted)
MAX_CLIP_BYTES = 64 * 2**20  # a control or mask clip sent to the page (the API's assets take larger ones)
MAX_CLIP_FRAMES = 512
UPLOADS_PER_CALLER = 8  # uploads of one key (or one client address, without keys) kept at once
UPLOAD_TTL_S = 600.0  # an upload is removed this long after it was made or last used by a job
SWEEP_EVERY_S = 30.0
#: The cookie the page's key box sets (same-site, so only this site's pages send it) for the upload routes.
KEY_COOKIE = "t2v_key"
#: Gradio's route that serves files of its cache (under the mounted page's path).
FILE_ROUTE = "/gradio_api/file={path:path}"


@dataclass
class Upload:
    owner: str  # "key:<id>" or "client:<address>"
    size: int


class Ledger:
    """The uploads this process stored: who made each (for the per-caller cap and reading it back)."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir
        self.lock = threading.Lock()
        self.files: dict[str, Upload] = {}
        self.sweeper: threading.Thread | None = None

    def count(self, owner: str) -> int:
        with self.lock:
            return sum(1 for u in self.files.values() if u.owner == owner)

    def add(self, path: str, owner: str, size: int) -> None:
        with self.lock:
            self.files[os.path.realpath(path)] = Upload(owner, size)
        self.start_sweeper()

    def owner(self, path: str) -> str | None:
        with self.lock:
            found = self.files.get(os.path.realpath(path))
        return found.owner if found else None

    def start_sweeper(self) -> None:
        with self.lock:
            if self.sweeper is not None or self.cache_dir is None:
                return
            self.sweeper = threading.Thread(target=self.sweep_forever, name="t2v-upload-sweeper", daemon=True)
        self.sweeper.start()

    def sweep_forever(self) -> None:
        while True:
            time.sleep(SWEEP_EVERY_S)
            self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """Remove every upload in Gradio's cache older than :data:`UPLOAD_TTL_S` (by its time of last use; also
        those a previous run of the server left); returns how many."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return 0
        cutoff = (now or time.time()) - UPLOAD_TTL_S
        removed = 0
        for path in upload_files(self.cache_dir):
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except OSError:  # removed meanwhile
                pass
            removed += 1
            with self.lock:
                self.files.pop(os.path.realpath(path), None)
            try:
                path.parent.rmdir()
            except OSError:
                pass
        return removed


class _Guard(Route):
    """Matches Gradio's upload paths until the request has been checked (then Gradio's own route takes it)."""

    def matches(self, scope):
        if scope.get(CHECKED):
            return Match.NONE, {}
        return super().matches(scope)


def guard_uploads(app, blocks, service=None) -> None:
    """Check every upload to the page ``blocks`` mounted on ``app``, and every read of one back (see the module's
    docstring); ``service`` (default ``app.state.service``) knows the keys."""
    service = service if service is not None else getattr(getattr(app, "state", None), "service", None)
    mounted = [r.app for r in app.router.routes if isinstance(r, Mount) and getattr(r.app, "blocks", None) is blocks]
    if not mounted:
        raise RuntimeError("guard_uploads: the page is not mounted on this app")
    for gradio_app in mounted:
        ledger = Ledger(Path(blocks.GRADIO_CACHE) if blocks.GRADIO_CACHE else None)
        check = ImageUploadCheck(gradio_app.router, blocks.GRADIO_CACHE, service=service, ledger=ledger)
        gradio_app.state.t2v_uploads = ledger
        for path in reversed(UPLOAD_ROUTES):  # first in the list: matched before Gradio's own routes
            gradio_app.router.routes.insert(0, _Guard(path, check, methods=["POST", "PUT"]))
        gradio_app.router.routes.insert(0, _Guard(FILE_ROUTE, UploadReadCheck(gradio_app.router, service, ledger),
                                                  methods=["GET", "HEAD"]))


def caller(scope, service) -> tuple[str | None, object | None, tuple[int, str] | None]:
    """(owner, key row, problem) of a request to the page's routes: the key from the page's cookie or a bearer
    header on a server with keys (problem 401 without a valid one), else the client's address."""
    if service is None or not service.access.has_keys():
        client = scope.get("client") or ("local", 0)
        return f"client:{client[0]}", None, None
    request = Request(scope)
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = bearer if scheme.lower() == "bearer" and bearer else unquote(request.cookies.get(KEY_COOKIE, ""))
    key = service.access.authenticate(token) if token else None
    if key is None:
        return None, None, (401, "uploads on this page need its API key: enter your key in the key box above")
    return f"key:{key.id}", key, None


class ImageUploadCheck:
    """ASGI app: who is uploading, read the body (bounded), check and re-encode its one image, then hand the
    request on to ``router`` and note what Gradio stored, for whom."""

    def __init__(self, router, cache_dir: str | Path | None = None, *, service=None, ledger: Ledger | None = None) -> None:
        self.router = router
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.service = service
        self.ledger = ledger or Ledger(self.cache_dir)
        self.turns: asyncio.Semaphore | None = None  # made on the serving loop, at the first upload

    async def __call__(self, scope, receive, send) -> None:
        from starlette.concurrency import run_in_threadpool

        from t2v import inputs  # deferred: imports numpy
        from t2v.api.deps import TOO_LARGE, read_body, replaying  # deferred: imports fastapi

        owner, key, problem = await run_in_threadpool(caller, scope, self.service)
        if problem:
            return await _refuse(scope, send, *problem)
        if key is not None and (wait := await run_in_threadpool(self.service.access.take_rate_token, key)) is not None:
            return await _refuse(scope, send, 429, f"rate limit of this key reached; try again in {wait:.0f} s",
                                 {"Retry-After": str(max(1, int(wait + 0.999)))})
        limit = max(inputs.MAX_IMAGE_BYTES, MAX_CLIP_BYTES) + FORM_OVERHEAD
        body = await read_body(receive, limit)
        if body is None:
            return  # the client went away
        if body is TOO_LARGE:
            return await _refuse(scope, send, 413, f"uploads are one image of at most "
                                                   f"{inputs.MAX_IMAGE_BYTES / 2**20:g} MiB or one clip of at most "
                                                   f"{MAX_CLIP_BYTES / 2**20:g} MiB")
        await run_in_threadpool(self.ledger.sweep)
        if self.ledger.count(owner) >= UPLOADS_PER_CALLER:
            return await _refuse(scope, send, 429, f"{UPLOADS_PER_CALLER} of your uploads are kept already; each is "
                                                   f"removed {UPLOAD_TTL_S / 60:g} minutes after its last use",
                                 {"Retry-After": "60"})
        if self.cache_dir is not None and uploads_size(self.cache_dir) + len(body) > UPLOAD_SPACE_BYTES:
            return await _refuse(scope, send, 503, "the server's space for uploaded images is full: try again later")
        self.turns = self.turns or asyncio.Semaphore(CHECKS_AT_ONCE)
        async with self.turns:
            checked = await self.clean(scope, body)
        if isinstance(checked[0], int):  # (status, message)
            return await _refuse(scope, send, *checked)
        field, name, kind, png = checked
        boundary = secrets.token_hex(16)
        clean = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                 f"Content-Type: {kind}\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
        headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() not in (b"content-type", b"content-length")]
        headers += [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                    (b"content-length", str(len(clean)).encode())]
        await self.router({**scope, "headers": headers, CHECKED: True}, replaying(clean, receive),
                          self.noting(send, owner, len(png)))

    def noting(self, send, owner: str, size: int):
        """``send``, noting the paths Gradio answers with as ``owner``'s uploads."""
        chunks: list[bytes] = []
        status = [0]

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and status[0] == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    try:
                        paths = json.loads(b"".join(chunks))
                    except ValueError:
                        paths = []
                    for path in paths if isinstance(paths, list) else []:
                        if isinstance(path, str):
                            self.ledger.add(path, owner, size)
            await send(message)

        return wrapped

    @staticmethod
    async def clean(scope, body: bytes) -> tuple[str, str, str, bytes] | tuple[int, str]:
        """(form field, file name, content type, the image re-encoded as PNG or the clip as sent) when the body
        is a form holding exactly one acceptable image or clip; else (status, message)."""
        from starlette.concurrency import run_in_threadpool
        from starlette.datastructures import UploadFile

        from t2v.inputs import VIDEO_TYPES, check_video_bytes, clean_image_bytes, video_extension  # deferred: numpy

        async def once():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form(max_files=1, max_fields=0)
        except Exception:  # not a form, a malformed one, or more than one file
            return 400, "uploads are one image file sent as multipart/form-data"
        try:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if len(files) != 1:
                return 400, "uploads are one image file sent as multipart/form-data"
            field, upload = files[0]
            data = await upload.read()
            clip = video_extension(data)
            if clip is not None and len(data) > MAX_CLIP_BYTES:
                return 413, f"uploaded clips are at most {MAX_CLIP_BYTES / 2**20:g} MiB"
            try:
                if clip is not None:
                    await run_in_threadpool(check_video_bytes, data, name="the uploaded file", field="video",
                                            max_frames=MAX_CLIP_FRAMES)
                else:
                    data = await run_in_threadpool(clean_image_bytes, data, name="the uploaded file", field="image")
            except InvalidRequest as e:
                return 415, str(e).removeprefix("image: ").removeprefix("video: ")
        finally:
            await form.close()
        stem = "".join(ch for ch in Path(upload.filename or "image").stem if ch.isalnum() or ch in "-_")[:60]
        if clip is not None:
            return field, f"{stem or 'clip'}.{clip}", VIDEO_TYPES[clip], data
        return field, f"{stem or 'image'}.png", "image/png", data


class UploadReadCheck:
    """ASGI app in front of Gradio's file route: an upload is served only to the key that made it (on a server
    with keys); anything else goes on to Gradio's own checks."""

    def __init__(self, router, service, ledger: Ledger) -> None:
        self.router, self.service, self.ledger = router, service, ledger

    async def __call__(self, scope, receive, send) -> None:
        from starlette.concurrency import run_in_threadpool

        path = unquote(scope.get("path", "").split("/gradio_api/file=", 1)[-1])
        owner = self.ledger.owner(path)
        if owner is not None and owner.startswith("key:"):
            who, _, _ = await run_in_threadpool(caller, scope, self.service)
            if who != owner:
                return await _refuse(scope, send, 404, "no such file")
        await self.router({**scope, CHECKED: True}, receive, send)


async def _refuse(scope, send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    async def nothing():
        return {"type": "http.disconnect"}

    await JSONResponse({"detail": message}, status_code=status, headers=headers)(scope, nothing, send)


def upload_files(cache_dir: Path) -> list[Path]:
    """The uploads in Gradio's cache ``cache_dir``: every file except the page's own copies (the folders
    :class:`t2v.ui.files.PrivateCopies` makes)."""
    found = []
    for root, dirs, files in os.walk(cache_dir):
        if root == str(cache_dir):
            dirs[:] = [d for d in dirs if not d.startswith(PREFIX)]
        found += [Path(root) / name for name in files]
    return found


def uploads_size(cache_dir: Path) -> int:
    """Bytes of the uploads in Gradio's cache ``cache_dir`` (the page's own copies not counted)."""
    total = 0
    for path in upload_files(cache_dir):
        try:
            total += path.stat().st_size
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
