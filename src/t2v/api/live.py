"""Sending the clip a running job streams (:mod:`t2v.export.stream`): a fragmented MP4 that grows as the job makes
it. Without ``Range`` the response follows the file: the bytes there now, then each part as it is written, until
the job ends (a player starts at the first part and keeps playing); a ``Range`` gets the bytes that exist
(``Content-Range: bytes a-b/*``, the whole length not known yet). With object storage, a worker on another
machine uploads the clip after each part, and that object is sent as it is. The finished file, with its record,
is served once the job has succeeded."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from t2v.api.downloads import byte_range, send

CHUNK = 64 * 1024
POLL_S = 0.2  # how often a followed file is looked at for new bytes
CHECK_S = 1.0  # how often the job's state is read while no bytes come
HEADERS = {"Cache-Control": "no-store", "Accept-Ranges": "bytes", "X-T2V-Clip": "growing"}


def send_live(service, job, live, *, media_type: str, range_header: str | None) -> Response:
    """The response for ``job``'s growing clip (a :class:`t2v.service.files.Download`; see the module). An
    object (the worker on another machine uploads the clip after each part) is sent as it is now."""
    if live.path is None:
        return send(live, media_type=media_type, headers=dict(HEADERS), range_header=range_header)
    path = live.path
    size = path.stat().st_size
    span = byte_range(range_header, size)
    if span == "unsatisfiable":
        return Response(status_code=416, headers={**HEADERS, "Content-Range": "bytes */*"})
    if span is not None:
        start, end = span
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        return Response(body, status_code=206, media_type=media_type,
                        headers={**HEADERS, "Content-Range": f"bytes {start}-{start + len(body) - 1}/*"})
    return StreamingResponse(follow(service, job.id, path), media_type=media_type, headers=HEADERS)


async def follow(service, job_id: str, path: Path) -> AsyncIterator[bytes]:
    """The file's bytes, then those appended to it, until the job has stopped running and every byte is sent.
    The file is held open, so a stream the worker removes once the job is done is still read to its end."""
    fd = await run_in_threadpool(os.open, path, os.O_RDONLY)
    try:
        idle = 0.0
        while True:
            data = await run_in_threadpool(os.read, fd, CHUNK)
            if data:
                idle = 0.0
                yield data
                continue
            if idle >= CHECK_S:
                idle = 0.0
                job = await run_in_threadpool(service.find_job, job_id)
                if job is None or job.status != "running":
                    tail = await run_in_threadpool(os.read, fd, CHUNK)
                    while tail:  # what the worker wrote before the job ended
                        yield tail
                        tail = await run_in_threadpool(os.read, fd, CHUNK)
                    return
            await asyncio.sleep(POLL_S)
            idle += POLL_S
    finally:
        os.close(fd)
