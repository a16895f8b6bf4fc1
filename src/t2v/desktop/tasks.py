"""What the desktop app does off the Tk thread, and with the desktop: functions that see the client and plain
data only, never a widget (see :mod:`t2v.desktop.bridge`)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from t2v import frontend as F
from t2v.desktop.player import decode, fit

VIEW_SIDE = 360  # the player's longer side in pixels
CLIP_FORMATS = ("mp4", "webm", "gif")  # which file of a finished job is fetched and played, in this order


def open_path(path: Path) -> None:
    """Open a file or folder with the desktop's default program."""
    if sys.platform.startswith("win"):
        os.startfile(str(path))  # noqa: S606 - the user's own file
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        raise F.FormError(f"No program to open files ({opener} is missing); the file is {path}")
    subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def submit_job(client, form: dict[str, Any], image: Path | None, last_seed: int | None, last_image: Path | None = None,
               files: dict[str, Any] | None = None):
    """Resolve the seed (the history's newest for "reuse last"), then queue the job (a last frame and the VACE
    ``files`` (by request field; reference images a list) uploaded as assets of the key first, as the first
    frame is with the request)."""
    def previous() -> int | None:
        items = client.list(limit=1).items
        return items[0].request.get("seed") if items else None

    seed = F.resolve_seed(form.get("seed_mode"), form.get("seed"), last_seed=last_seed, previous=previous)
    fields = F.request_fields(form, seed)
    if last_image is not None:
        fields["last_image"] = client.upload(last_image).id
    for field, value in (files or {}).items():
        fields[field] = [client.upload(p).id for p in value] if isinstance(value, list) else client.upload(value).id
    return client.submit(fields.pop("prompt"), image=image, **fields)


def update_job(client, job_id: str, form: dict[str, Any]):
    """Give a queued job the form's values (its seed kept unless the form fixes one)."""
    fields = F.request_fields(form, F.resolve_seed("fixed", form["seed"]) if form.get("seed_mode") == "fixed" else None)
    return client.change_job(job_id, **{k: v for k, v in fields.items() if v is not None})


def fetch_image(client, job_id: str, name: str):
    """(job id, the job's preview or poster fitted to the view) or (job id, None) while it has none."""
    from PIL import Image

    data = client.image(job_id, name)
    return job_id, (fit(Image.open(io.BytesIO(data)).convert("RGB"), VIEW_SIDE) if data else None)


def fetch_clip(client, downloads: Path, job):
    """Download the clip into ``downloads`` (a file already there is only checked) and decode its frames."""
    fmt = next((f for f in CLIP_FORMATS if job.file(f) is not None), None)
    if fmt is None:
        raise F.FormError("The job made no video file to play (ask for mp4, webm or gif)")
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / F.clip_filename(job.request, f".{fmt}", tag=job.id[-6:].lower())  # already here: a Range request finds nothing left, then a sha256 check
    client.download(job.id, path, format=fmt)
    frames, fps = decode(path, max_side=VIEW_SIDE)
    return job.id, path, frames, fps


def save_copy(clip: Path, target: Path) -> Path:
    """Copy ``clip`` to ``target`` (whole or absent); FormError when ``target`` has another extension."""
    if target.suffix.lower() != clip.suffix.lower():
        raise F.FormError(f"Save as: {target.name} must end in {clip.suffix} (the clip is {clip.suffix[1:]})")
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(clip, tmp)
    tmp.replace(target)
    return target


def list_jobs(client, query: str | None) -> list:
    return client.list(limit=200, query=query).items
