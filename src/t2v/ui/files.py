"""How the web page hands a job's files to the browser without ever serving ``$T2V_HOME``.

Gradio serves ``/gradio_api/file=<path>`` for files in its cache folder (and for ``allowed_paths``).
The page gives Gradio no allowed paths and blocks ``$T2V_HOME`` (:func:`blocked_paths`), so no job's
video, preview, poster or record can be fetched by its path. Instead every file a handler shows (the
player's clip, a download, the live preview, a history poster) is copied by :class:`PrivateCopies` into
Gradio's cache under a fresh random folder name, and only the browser session that asked for it, with
a valid key, receives that URL: it cannot be derived from the job id. A copy is a hard link where the
cache and ``$T2V_HOME`` share a file system (t2v replaces its files, never writes into them, so the link
keeps the file as it was), so showing a clip again costs no disk space. A copy whose job's file is gone (the
job was deleted or purged, through any route or process) is removed within :data:`ORPHAN_SWEEP_S`; Gradio
deletes the others with the rest of its cache (``delete_cache`` of the Blocks: files older than two hours; and
when the server stops).

:func:`refuse_uploads` turns Gradio's upload routes off when the page has no field that takes a file.
No Gradio import at module level: the caller passes the objects in.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from t2v.errors import T2VError

#: Gradio's routes that store files a browser sends (under the mounted page's path).
UPLOAD_ROUTES = ("/gradio_api/upload", "/gradio_api/process_recording")
#: Gradio components that can take a file from the browser when they are interactive.
UPLOAD_COMPONENTS = ("File", "UploadButton", "Image", "Video", "Audio", "Gallery", "Model3D", "MultimodalTextbox",
                     "ImageEditor", "ImageSlider", "Sketchpad", "Paint")
PREFIX = "t2v-"
ORPHAN_SWEEP_S = 30.0  # how often copies of files that are gone are looked for and removed


class PrivateCopies:
    """``copies(path)`` -> a copy of ``path`` in ``cache_dir``, in a new folder with 128 random bits in its name.

    The file keeps its name (``video.mp4``), so downloads are named as before. ``None`` stays ``None``,
    and so does a file that has gone (deleted or purged meanwhile).
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.lock = threading.Lock()
        self.made: dict[Path, Path] = {}  # copy folder -> the file it copies
        self.sweeper: threading.Thread | None = None

    def sweep(self) -> int:
        """Remove the copies whose original is gone (its job deleted or purged); returns how many."""
        with self.lock:
            for folder in [f for f in self.made if not f.exists()]:  # removed with Gradio's cache: forget them
                del self.made[folder]
            gone = [folder for folder, source in self.made.items() if not source.exists()]
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
            with self.lock:
                self.made.pop(folder, None)
        return len(gone)

    def sweep_forever(self) -> None:
        while True:
            time.sleep(ORPHAN_SWEEP_S)
            self.sweep()

    def __call__(self, path: str | Path | None, name: str | None = None) -> str | None:
        """The copy of ``path`` (named ``name``: a download's file name; default the file's own)."""
        if path is None:
            return None
        source = Path(path)
        folder = self.cache_dir / f"{PREFIX}{secrets.token_hex(16)}"
        folder.mkdir(parents=True, exist_ok=False)
        target = folder / (name or source.name)
        staging = folder / f".{target.name}.part"
        try:
            try:
                os.link(source, staging)
            except FileNotFoundError:
                raise
            except OSError:  # another file system (or links not allowed): a copy
                shutil.copyfile(source, staging)
        except FileNotFoundError:  # the job was deleted or purged between the look-up and now
            folder.rmdir()
            return None
        staging.replace(target)  # Gradio may serve the file as soon as it sees the name: never half-written
        with self.lock:
            self.made[folder] = source
            start = self.sweeper is None
            if start:
                self.sweeper = threading.Thread(target=self.sweep_forever, name="t2v-copies-sweeper", daemon=True)
        if start:
            self.sweeper.start()
        return str(target)

    def batch(self) -> Callable[[str | Path | None], str | None]:
        """A ``copies`` that makes one copy per file however often it is asked (one page update: the
        player's WebM and the WebM download share theirs)."""
        made: dict[tuple[str | None, str | None], str | None] = {}

        def copy(path: str | Path | None, name: str | None = None) -> str | None:
            key = (None if path is None else str(path), name)
            if key not in made:
                made[key] = self(path, name)
            return made[key]

        return copy


def blocked_paths(home: str | Path, cache_dir: str | Path) -> list[str]:
    """Folders Gradio must never serve: ``home``, as given and resolved.

    Gradio's cache (``GRADIO_TEMP_DIR``) must lie outside ``home``: the page's copies are served from it.
    """
    home, cache = Path(home), Path(cache_dir).resolve()
    real = home.resolve()
    if real == cache or real in cache.parents:
        raise T2VError(f"Gradio's cache folder {cache} is inside T2V_HOME {real}, which the web page never serves: "
                       "set GRADIO_TEMP_DIR to a folder outside T2V_HOME")
    return list(dict.fromkeys([str(home.absolute()), str(real)]))


def upload_fields(gr, blocks) -> list[str]:
    """The components of ``blocks`` that let the browser send a file (none on t2v's page)."""
    kinds = tuple(k for k in (getattr(gr, name, None) for name in UPLOAD_COMPONENTS) if isinstance(k, type))
    found = []
    for block in blocks.blocks.values():
        if isinstance(block, kinds) and getattr(block, "interactive", None) is not False:
            name = getattr(block, "elem_id", None) or getattr(block, "label", None) or ""
            found.append(f"{type(block).__name__} {name}".strip())
    return found


def refuse_uploads(app, blocks) -> None:
    """Answer 403 on Gradio's upload routes of the page ``blocks`` mounted on ``app``."""
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def refused(request):
        return JSONResponse({"detail": "uploads are off: this page has no field that takes a file"}, status_code=403)

    mounted = [r.app for r in app.router.routes if isinstance(r, Mount) and getattr(r.app, "blocks", None) is blocks]
    if not mounted:
        raise RuntimeError("refuse_uploads: the page is not mounted on this app")
    for gradio_app in mounted:
        for path in reversed(UPLOAD_ROUTES):  # first in the list: matched before Gradio's own routes
            gradio_app.router.routes.insert(0, Route(path, refused, methods=["POST", "PUT"]))
