"""/v1/assets: upload an image (image-to-video's first frame) or a video (mp4, webm or gif: video-to-video's input,
``POST /v1/post``'s source), read its metadata or its bytes, delete it.

An asset belongs to the key that uploaded it: another key's asset answers 404, word for word as a
missing one. A video request names it by id (``"image": "<id>"``, ``"video": "<id>"``), or sends the image
itself in a multipart ``POST /v1/videos`` (see :mod:`t2v.api.routes.videos`); a post job names a video by id
(``"asset": "<id>"``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Header, HTTPException, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from t2v.api.deps import base_url, get_service, rate_limited
from t2v.api.downloads import send
from t2v.api.responses import CHANGING, KEYED, LOCATION, RANGE_DOC, errors, file_responses
from t2v.contract import Asset
from t2v import inputs
from t2v.errors import InvalidRequest

router = APIRouter(prefix="/v1/assets", tags=["assets"])


async def read_upload(upload: UploadFile, field: str) -> bytes:
    """The bytes of an uploaded file, refused (422 naming ``field``) past the largest image accepted."""
    data = await upload.read(inputs.MAX_IMAGE_BYTES + 1)
    if len(data) > inputs.MAX_IMAGE_BYTES:
        raise InvalidRequest(f"{field}: the file is larger than {inputs.MAX_IMAGE_BYTES / 2**20:g} MiB, the largest "
                             "image accepted", field=field)
    return data


async def read_asset_upload(upload: UploadFile, service) -> bytes:
    """The bytes of an uploaded image or video: an image past the largest accepted is refused (422), a video past
    the server's upload limit (T2V_MAX_UPLOAD_BYTES) answers 413."""
    from t2v.service.assets import is_video_upload  # deferred: imports alembic, httpx, PIL

    video_limit = service.settings.max_upload_bytes
    data = await upload.read(max(inputs.MAX_IMAGE_BYTES, video_limit) + 1)
    if is_video_upload(data[:16], upload.filename):
        if len(data) > video_limit:
            raise HTTPException(413, f"file: the video is larger than {video_limit / 2**20:g} MiB, the largest upload "
                                     "this server takes (T2V_MAX_UPLOAD_BYTES)")
    elif len(data) > inputs.MAX_IMAGE_BYTES:
        raise InvalidRequest(f"file: the file is larger than {inputs.MAX_IMAGE_BYTES / 2**20:g} MiB, the largest "
                             "image accepted", field="file")
    return data


@router.post("", status_code=201, summary="Upload an image (PNG, JPEG or WebP, at most 20 MiB and 4096x4096 pixels) "
             "or a video (mp4, webm or gif, 2 to T2V_MAX_FRAMES frames, at most T2V_MAX_UPLOAD_BYTES)",
             response_model=Asset, responses={201: {"description": "The asset, stored", "headers": LOCATION},
                                              **errors(*CHANGING, 429, 503)})
async def create_asset(request: Request, file: UploadFile = File(..., description="The image or video file."),
                       service=Depends(get_service), key=Depends(rate_limited)):
    data = await read_asset_upload(file, service)
    asset = await run_in_threadpool(service.assets.add_asset, data, file.filename, key, field="file")
    location = f"{base_url(request)}/v1/assets/{asset['id']}"
    return JSONResponse(asset, status_code=201, headers={"Location": location})


@router.get("/{asset_id}", summary="An asset's metadata: sha256, size, type, pixels", response_model=Asset,
            responses=errors(*KEYED, 404, 429))
async def get_asset(asset_id: str, service=Depends(get_service), key=Depends(rate_limited)):
    return await run_in_threadpool(service.assets.get_asset, asset_id, key)


@router.get("/{asset_id}/content", summary="An asset's bytes as uploaded (supports HTTP Range)", response_class=Response,
            responses={**file_responses("image/png", "image/jpeg", "image/webp", "video/mp4", "video/webm", "image/gif",
                                        what="The file as uploaded, as its content_type"), **errors(*KEYED, 404, 429)})
async def get_asset_content(asset_id: str, range_header: str | None = Header(None, alias="Range", description=RANGE_DOC),
                            service=Depends(get_service), key=Depends(rate_limited)):
    download, asset = await run_in_threadpool(service.assets.asset_download, asset_id, key)
    return send(download, media_type=asset["content_type"], filename=asset["filename"], range_header=range_header)


@router.delete("/{asset_id}", status_code=204, summary="Delete an asset (jobs that used it keep their records)",
               response_class=Response, responses={204: {"description": "Deleted"}, **errors(*KEYED, 403, 404, 429)})
async def delete_asset(asset_id: str, service=Depends(get_service), key=Depends(rate_limited)):
    await run_in_threadpool(service.assets.delete_asset, asset_id, key)
    return Response(status_code=204)
