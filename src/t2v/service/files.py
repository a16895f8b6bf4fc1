"""A service's job files in its artifact store (:mod:`t2v.store.artifacts`): where a worker makes them, how
they are published, found, served and removed, and the checkpoints that let a job resume on any machine.

Keys: ``videos/<job id>/<file>`` (a job row's ``files[].path`` is the part after ``videos/``, as it always
was) and ``checkpoints/<job id>.ckpt``.

With the local store (the default) a worker writes straight into ``$T2V_HOME/videos/<job id>`` and
``$T2V_HOME/checkpoints``, so publishing copies nothing. With object storage it writes into a scratch folder
(``$T2V_HOME/scratch``), uploads each file as it is finished (the preview at each refresh, every checkpoint
as it is saved, the outputs before the job is marked done) and removes the scratch copy; readers that need a
local file (the web UI, the records export) get a copy cached under ``$T2V_HOME/cache/artifacts``.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from t2v.export.files import remove_output
from t2v.store.artifacts import ArtifactStore, check_key

logger = logging.getLogger(__name__)

VIDEOS, CHECKPOINTS = "videos", "checkpoints"
LIVE = "live.mp4"  # the clip a running job streams as it is made (t2v.export.stream), in its workdir


@dataclass
class Download:
    """How to send one stored file: from a local ``path``, by redirecting to ``url``, or as ``size`` bytes
    streamed by ``iter_range(start, end)``."""

    key: str
    size: int
    path: Path | None = None
    url: str | None = None
    iter_range: Callable[[int, int | None], Iterator[bytes]] | None = None


class JobFiles:
    def __init__(self, settings, store: ArtifactStore) -> None:
        self.settings, self.store = settings, store
        self.scratch = settings.home / "scratch"
        self.cache = settings.home / "cache" / "artifacts"

    @property
    def in_place(self) -> bool:
        """Whether workers write straight into the store (the local store)."""
        return self.store.local_dir(VIDEOS) is not None

    # -- keys ----------------------------------------------------------------------------------------------
    @staticmethod
    def video_key(job_id: str, name: str) -> str:
        return check_key(f"{VIDEOS}/{job_id}/{name}")

    @staticmethod
    def file_key(entry: dict) -> str | None:
        """The key of a job row's ``files`` entry (None for one that names no valid key)."""
        try:
            return check_key(f"{VIDEOS}/{entry['path']}")
        except (KeyError, TypeError, ValueError):
            return None

    def job_file_key(self, job, fmt: str) -> str | None:
        """The key of ``job``'s file in ``fmt`` (None when it has none)."""
        return next((self.file_key(f) for f in job.files or [] if f.get("format") == fmt), None)

    # -- a worker's side -----------------------------------------------------------------------------------
    def workdir(self, job_id: str) -> Path:
        """The folder a worker writes ``job_id``'s files into (the store's own folder, or scratch)."""
        folder = self.store.local_dir(f"{VIDEOS}/{job_id}") or self.scratch / VIDEOS / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def publish(self, job_id: str, path: Path) -> str:
        """Store one finished file of ``job_id`` (made in its workdir); returns its ``files[].path``."""
        rel = path.relative_to(self.workdir(job_id)).as_posix()
        if path.is_dir():  # PNG frames: a folder of files
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                self.store.put_file(self.video_key(job_id, f.relative_to(self.workdir(job_id)).as_posix()), f)
        else:
            self.store.put_file(self.video_key(job_id, rel), path)
        return f"{job_id}/{rel}"

    def live_path(self, job_id: str) -> Path:
        """Where a worker streams ``job_id``'s clip while it runs: its workdir (the store's own folder, seen by
        every process on the machine; with object storage the worker's scratch, seen by the processes beside
        it). Nothing is created."""
        return (self.store.local_dir(f"{VIDEOS}/{job_id}") or self.scratch / VIDEOS / job_id) / LIVE

    def live_saved(self, job_id: str) -> Callable[[Path], None] | None:
        """What a worker does after each part of the clip it streams: with object storage, upload it (its API
        processes may be on other machines); nothing in place. A failed upload is logged, never fatal."""
        if self.in_place:
            return None

        def upload(path: Path) -> None:
            try:
                self.store.put_file(self.video_key(job_id, LIVE), path)
            except Exception:
                logger.warning("could not upload the clip so far of %s", job_id, exc_info=True)

        return upload

    def live_download(self, job_id: str) -> Download | None:
        """The clip a running job streams, as the API sends it: the local file where this machine has it (a
        :class:`Download` with ``path``), else the object its worker uploaded after the last part; None."""
        path = self.live_path(job_id)
        if path.is_file():
            return Download(self.video_key(job_id, LIVE), path.stat().st_size, path=path)
        if self.in_place:
            return None
        return self.download(self.video_key(job_id, LIVE), presign=False)

    def drop_live(self, job_id: str) -> None:
        """Remove a job's streamed clip (its file, and with object storage its object) once the job has ended."""
        remove_output(self.live_path(job_id))
        if not self.in_place:
            self.remove_object(self.video_key(job_id, LIVE))

    def publish_preview(self, job_id: str, path: Path) -> None:
        """Upload a refreshed preview (a no-op in place); a failure is logged, never fatal."""
        if self.in_place:
            return
        try:
            self.store.put_file(self.video_key(job_id, path.name), path)
        except Exception:
            logger.warning("could not upload the preview of %s", job_id, exc_info=True)

    def done_writing(self, job_id: str) -> None:
        """Drop the scratch copy of a job's files once they are all stored."""
        if not self.in_place:
            shutil.rmtree(self.scratch / VIDEOS / job_id, ignore_errors=True)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def checkpoint_key(self, job_id: str) -> str:
        return check_key(f"{CHECKPOINTS}/{job_id}.ckpt")

    def checkpoint_path(self, job_id: str) -> Path:
        """Where this process reads and writes ``job_id``'s checkpoint; with object storage, the stored one
        (saved by whichever machine ran the job last) is fetched there first."""
        folder = self.store.local_dir(CHECKPOINTS)
        if folder is not None:
            return folder / f"{job_id}.ckpt"
        path = self.scratch / CHECKPOINTS / f"{job_id}.ckpt"
        path.unlink(missing_ok=True)
        try:
            if self.store.download(self.checkpoint_key(job_id), path):
                logger.info("fetched the checkpoint of %s from %s", job_id, self.store)
        except Exception:
            logger.warning("could not fetch the checkpoint of %s; starting from step 0", job_id, exc_info=True)
        return path

    def checkpoint_saved(self, job_id: str) -> Callable[[Path], None] | None:
        """What to call after each checkpoint save (None in place): upload it, so another machine resumes."""
        if self.in_place:
            return None

        def upload(path: Path) -> None:
            try:
                self.store.put_file(self.checkpoint_key(job_id), path)
            except Exception:
                logger.warning("could not upload the checkpoint of %s", job_id, exc_info=True)

        return upload

    def drop_checkpoint(self, job_id: str) -> None:
        """Delete a job's checkpoint (stored and local) and any torn write of it."""
        path = self.checkpoint_path_local(job_id)
        path.unlink(missing_ok=True)
        for torn in path.parent.glob(f".{path.name}.*.part"):
            torn.unlink(missing_ok=True)
        if not self.in_place:
            try:
                self.store.delete(self.checkpoint_key(job_id))
            except Exception:
                logger.warning("could not delete the checkpoint of %s", job_id, exc_info=True)

    def checkpoint_path_local(self, job_id: str) -> Path:
        folder = self.store.local_dir(CHECKPOINTS)
        return (folder if folder is not None else self.scratch / CHECKPOINTS) / f"{job_id}.ckpt"

    def checkpoint_job_ids(self) -> set[str]:
        """Jobs with a stored checkpoint (or a torn write of one, in place)."""
        ids = {k.split("/", 1)[1].split(".", 1)[0] for k in self.store.keys(CHECKPOINTS)}
        folder = self.store.local_dir(CHECKPOINTS)
        if folder is not None and folder.is_dir():
            ids |= {p.name.lstrip(".").split(".", 1)[0] for p in folder.iterdir()}
        return {i for i in ids if i}

    # -- readers -------------------------------------------------------------------------------------------
    def local_file(self, key: str, *, fresh: bool = False) -> Path | None:
        """A local file with the object's bytes: the stored file itself in place, else a cached copy
        (downloaded again when ``fresh`` or its size changed). None when there is no such object."""
        if self.in_place:
            return self.store.local_path(key)
        size = self.store.size(key)
        if size is None:
            return None
        path = self.cache / key
        if fresh or not path.is_file() or path.stat().st_size != size:
            self.store.download(key, path)
        return path

    def download(self, key: str, *, presign: bool) -> Download | None:
        """How to send the object ``key`` (None when it does not exist)."""
        local = self.store.local_path(key)
        if local is not None:
            return Download(key, local.stat().st_size, path=local)
        size = self.store.size(key)
        if size is None:
            return None
        if presign:
            return Download(key, size, url=self.store.presign(key))
        return Download(key, size, iter_range=lambda start, end: self.store.iter_range(key, start, end))

    def remove(self, job_id: str) -> None:
        """Delete every stored file of ``job_id`` and any local copy (safe to repeat)."""
        self.store.delete_prefix(f"{VIDEOS}/{job_id}")
        for folder in (self.scratch / VIDEOS / job_id, self.cache / VIDEOS / job_id):
            shutil.rmtree(folder, ignore_errors=True)

    def remove_object(self, key: str) -> None:
        """Delete one stored object (e.g. an uploaded asset, ``assets/<id>.<ext>``) and any cached copy of it
        (safe to repeat)."""
        self.store.delete(check_key(key))
        (self.cache / key).unlink(missing_ok=True)
