"""The page's *History*: every finished job (succeeded, failed or cancelled) of the caller's key, newest first.

Plain functions over a JobService (no Gradio here). A succeeded job shows its poster (the clip's middle
frame); a failed or cancelled one a tile that names its status (its last live preview would be noise), so it
can be picked, read (its error) and deleted like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from t2v import frontend as F
import t2v.ui.handlers as H

logger = logging.getLogger(__name__)

PLACEHOLDER_COLOURS = {"failed": (185, 28, 28), "cancelled": (107, 114, 128)}


@dataclass
class HistoryItem:
    job_id: str
    image: Path | None  # None: a failed or cancelled job (show :func:`placeholder`)
    caption: str
    status: str = "succeeded"
    error: str | None = None


caption = F.caption  # the shared front-end logic's history caption


def items(service, query: str | None = None, token: str | None = None, *, limit: int = 48) -> list[HistoryItem]:
    """Finished jobs, newest first, optionally only prompts containing ``query``."""
    key_row = H.authorize(service, token, counted=True)
    query = (query or "").strip() or None
    jobs = [job for status in H.FINISHED for job in service.list(status=status, limit=limit, api_key=key_row, query=query)]
    out = []
    for job in sorted(jobs, key=lambda j: j.id, reverse=True)[:limit]:  # ids sort by creation time
        if job.status == "succeeded":
            image = service.image_path(job.id, "poster.png") or service.file_path(job, H.PLAYER_FORMAT)
            if image is None:  # files purged by hand: nothing to show
                continue
        else:  # a tile naming the status, never the half-denoised noise of its last preview
            image = None
        out.append(HistoryItem(job.id, image, caption(job.status, job.request or {}, job.error), job.status, job.error))
    return out


def placeholder(status: str, folder: str | Path) -> Path:
    """A small PNG naming ``status`` (for a job with no picture), written once into ``folder``."""
    from PIL import Image, ImageDraw

    path = Path(folder) / f"t2v-history-{status}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (160, 90), PLACEHOLDER_COLOURS.get(status, (75, 85, 99)))
        ImageDraw.Draw(image).text((80, 45), status, fill=(255, 255, 255), anchor="mm")
        tmp = path.with_suffix(".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)  # whole or absent, even with two sessions at once
    return path


__all__ = ["HistoryItem", "caption", "items", "placeholder"]
