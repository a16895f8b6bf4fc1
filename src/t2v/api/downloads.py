"""Sending a stored job file: a local file as it is, object storage streamed by byte range (HTTP Range, one
range per request) or redirected to a presigned URL (``T2V_STORAGE_PRESIGN=1``)."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def send(download, *, media_type: str, filename: str | None = None, headers: dict[str, str] | None = None,
         range_header: str | None = None) -> Response:
    """The response for a :class:`t2v.service.files.Download`: the same answers to a ``Range`` for a local file
    and an object (200, 206 for one range, 416 past the end; several ranges or a malformed one get the whole file)."""
    headers = dict(headers or {})
    if download.url is not None:
        return RedirectResponse(download.url, status_code=307, headers={"Cache-Control": "no-store"})
    size = download.size
    span = byte_range(range_header, size)
    if span == "unsatisfiable":
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if download.path is not None:  # FileResponse sends the one range itself, as read here
        return LocalFile(download.path, span, media_type=media_type, filename=filename, headers=headers)
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=utf-8''{quote(filename)}"
    headers["Accept-Ranges"] = "bytes"
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(download.iter_range(0, None), media_type=media_type, headers=headers)
    start, end = span
    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
    return StreamingResponse(download.iter_range(start, end), status_code=206, media_type=media_type, headers=headers)


class LocalFile(FileResponse):
    """A FileResponse that sends ``span`` (start, end), the range :func:`byte_range` read from the request, or
    the whole file (None): Starlette never parses the client's own header (it would answer a malformed one 400
    in plain text, and several ranges with multipart/byteranges)."""

    def __init__(self, path, span: tuple[int, int] | None, **kw) -> None:
        super().__init__(path, **kw)
        self.span = span

    async def __call__(self, scope, receive, send) -> None:
        headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"range"]
        if self.span is not None:
            headers.append((b"range", f"bytes={self.span[0]}-{self.span[1]}".encode()))
        await super().__call__({**scope, "headers": headers}, receive, send)


def byte_range(header: str | None, size: int):
    """``(start, end)`` (inclusive) of a single-range ``Range`` header, None to send the whole file (no header,
    several ranges or a malformed one: RFC 9110 lets a server ignore it), or "unsatisfiable"."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if not m or not (m.group(1) or m.group(2)):
        return None
    first, last = _position(m.group(1)), _position(m.group(2))
    if first is None:  # the last N bytes
        return "unsatisfiable" if last == 0 or size == 0 else (max(0, size - last), size - 1)
    end = min(last, size - 1) if last is not None else size - 1
    if first >= size or (last is not None and last < first):
        return "unsatisfiable"
    return first, end


#: Digits read of a Range position: more than any file's size (a longer number is read as this bound, never
#: parsed whole: Python refuses to turn more than 4,300 digits into an int).
POSITION_DIGITS = 18


def _position(digits: str | None) -> int | None:
    if not digits:
        return None
    return int(digits) if len(digits) <= POSITION_DIGITS else 10**POSITION_DIGITS
