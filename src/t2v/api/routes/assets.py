"""/v1/assets: upload an image (image-to-video's first frame), read its metadata, delete it.

An asset belongs to the key that uploaded it: another key's asset answers 404, word for word as a
missing one. A video request names it by id (``"image": "<id>"``), or sends the file itself in a
multipart ``POST /v1/videos`` (see :mod:`t2v.api.routes.videos`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from t2v.api.deps import get_service, rate_limited
from t2v.errors import InvalidRequest

router = APIRouter(prefix="/v1/assets", tags=["assets"])


async def read_upload(upload: UploadFile, field: str) -> bytes:
    """The bytes of an uploaded file, refused (422 naming ``field``) past the largest image accepted."""
    from t2v import inputs

    data = await upload.read(inputs.MAX_IMAGE_BYTES + 1)
    if len(data) > inputs.MAX_IMAGE_BYTES:
        raise InvalidRequest(f"{field}: the file is larger than {inputs.MAX_IMAGE_BYTES / 2**20:g} MiB, the largest "
                             "image accepted", field=field)
    return data


@router.post("", status_code=201, summary="Upload an image: PNG, JPEG or WebP, at most 20 MiB and 4096x4096 pixels")
async def create_asset(request: Request, file: UploadFile = File(..., description="The image file."),
                       service=Depends(get_service), key=Depends(rate_limited)):
    data = await read_upload(file, "file")
    asset = await run_in_threadpool(service.add_asset, data, file.filename, key, field="file")
    location = f"{str(request.base_url).rstrip('/')}/v1/assets/{asset['id']}"
    return JSONResponse(asset, status_code=201, headers={"Location": location})


@router.get("/{asset_id}", summary="An asset's metadata: sha256, size, type, pixels")
async def get_asset(asset_id: str, service=Depends(get_service), key=Depends(rate_limited)):
    return await run_in_threadpool(service.get_asset, asset_id, key)


@router.delete("/{asset_id}", status_code=204, summary="Delete an asset (jobs that used it keep their records)")
async def delete_asset(asset_id: str, service=Depends(get_service), key=Depends(rate_limited)):
    await run_in_threadpool(service.delete_asset, asset_id, key)
    return Response(status_code=204)
