"""What the desktop app does off the Tk thread, and with the desktop: functions that see the client and plain
data only, never a widget (see :mod:`t2v.desktop.bridge`)."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2v import frontend as F
from t2v.desktop.player import decode, fit
from t2v.errors import InvalidRequest, T2VError

logger = logging.getLogger(__name__)

VIEW_SIDE = 360  # the player's longer side in pixels
CLIP_FORMATS = ("mp4", "webm", "gif")  # which file of a finished job is fetched and played, in this order
POST_ONLY = F.clip_uses(())[-1]  # the use of the user's clip that needs no model: post-processing it only
CLIP_LABEL = F.CLIP_LABELS["source_clip"]


@dataclass(frozen=True)
class Clip:
    """The user's own video in the form: its file, what to do with it (one of :data:`t2v.frontend.CLIP_USES`) and
    video-to-video's strength as typed (None: the default)."""

    path: Path
    use: str
    strength: str | None = None


def message_of(e: BaseException) -> str:
    """One sentence for the window (never a traceback): the user's to fix, or a logged bug in one line."""
    if isinstance(e, F.FormError):
        return str(e)
    if isinstance(e, T2VError):
        return str(F.readable(e))
    logger.error("desktop app error", exc_info=e)
    return f"Something went wrong ({type(e).__name__}: {e})."


def open_path(path: Path) -> None:
    """Open a file or folder with the desktop's default program."""
    if sys.platform.startswith("win"):
        os.startfile(str(path))  # noqa: S606 - the user's own file
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        raise F.FormError(f"No program to open files ({opener} is missing); the file is {path}")
    subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


SOUND_PLAYERS = (("paplay",), ("pw-play",), ("aplay", "-q"), ("ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"))


def has_sound(clip: Path) -> bool:
    """Whether ``clip`` has an audio track (its header read; a file that does not open has none)."""
    import av  # deferred: PyAV is the desktop's only reader of sound

    try:
        with av.open(str(clip)) as container:
            return bool(container.streams.audio)
    except (OSError, av.error.FFmpegError):
        return False


def play_sound(clip: Path, scratch: Path):
    """Play ``clip``'s sound (extracted to ``scratch``/sound.wav) with the system's player: ``winsound`` on Windows,
    ``afplay`` on macOS, else the first of paplay, pw-play, aplay, ffplay. Returns the player's process (None on
    Windows, which plays it asynchronously itself); a FormError when the clip has no sound or nothing plays it."""
    from t2v.export.audio import read_audio, write_wav  # deferred: imports PyAV

    audio = read_audio(clip, name="clip")
    if audio is None:
        raise F.FormError("This clip has no sound")
    wav = write_wav(audio, Path(scratch) / "sound.wav")
    if sys.platform.startswith("win"):
        import winsound

        winsound.PlaySound(str(wav), winsound.SND_FILENAME | winsound.SND_ASYNC)
        return None
    players = (("afplay",),) if sys.platform == "darwin" else SOUND_PLAYERS
    for cmd in players:
        if shutil.which(cmd[0]):
            return subprocess.Popen([*cmd, str(wav)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    names = ", ".join(c[0] for c in players)
    raise F.FormError(f"No program plays sound here ({names}); Open file plays the clip with its sound")


def submit_job(client, form: dict[str, Any], image: Path | None, last_seed: int | None, last_image: Path | None = None,
               files: dict[str, Any] | None = None, clip: Clip | None = None, inputs: tuple[str, ...] | None = None):
    """Resolve the seed (the history's newest for "reuse last"), then queue the job (a last frame and the VACE
    ``files`` (by request field; reference images a list) uploaded as assets of the key first, as the first
    frame is with the request). With the user's ``clip``, it is uploaded first and used as it says
    (:func:`clip_request`; ``inputs``: the model's input fields): a post-processing job of the clip alone is
    queued with ``POST /v1/post``."""
    def previous() -> int | None:
        items = client.list(limit=1).items
        return items[0].request.get("seed") if items else None

    post_only = clip is not None and clip.use == POST_ONLY
    seed = None if post_only else F.resolve_seed(form.get("seed_mode"), form.get("seed"), last_seed=last_seed,
                                                 previous=previous)
    if clip is None:
        fields = F.request_fields(form, seed)
    else:
        clip_request(form, seed, clip, "-", inputs)  # a use the model cannot take is refused before the upload
        fields = clip_request(form, seed, clip, upload_clip(client, clip.path), inputs)
    if fields.get("mode") == "post":
        return client.post_process(fields["post"], asset=fields["asset"], formats=fields["formats"],
                                   crf=fields.get("crf"))
    if last_image is not None:
        fields["last_image"] = client.upload(last_image).id
    for field, value in (files or {}).items():
        fields[field] = [client.upload(p).id for p in value] if isinstance(value, list) else client.upload(value).id
    return client.submit(fields.pop("prompt"), image=image, **fields)


def clip_request(form: dict[str, Any], seed: int | None, clip: Clip, asset: str,
                 inputs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The request for the form with the uploaded clip ``asset`` (:func:`t2v.frontend.with_clip`): the video
    request with ``video`` (and ``strength``) or ``extend``, or for post-processing only the post job of the clip
    (which needs no prompt: nothing is generated). FormError naming the field when the form cannot make it."""
    if clip.use == POST_ONLY:
        fields = {"post": F.post_fields(form), "formats": list(form.get("formats") or ())}
    else:
        fields = F.request_fields(form, seed)
    return F.with_clip(fields, clip.use, asset, clip.strength, inputs)


def upload_clip(client, path: Path) -> str:
    """The asset id of the user's clip, uploaded; a file the server refuses is named as the form's field."""
    try:
        return client.upload(path).id
    except InvalidRequest as e:
        reason = str(F.readable(e)).split(": ", 1)[-1]
        raise F.FormError(f"{CLIP_LABEL}: {path.name}: {reason}", field="source_clip") from None


def update_job(client, job_id: str, form: dict[str, Any]):
    """Give a queued job the form's values (its seed kept unless the form fixes one)."""
    fields = F.request_fields(form, F.resolve_seed("fixed", form["seed"]) if form.get("seed_mode") == "fixed" else None)
    return client.change_job(job_id, **{k: v for k, v in fields.items() if v is not None})


def fetch_image(client, job_id: str, name: str):
    """(job id, the job's preview or poster fitted to the view) or (job id, None) while it has none."""
    from PIL import Image

    data = client.image(job_id, name)
    return job_id, (fit(Image.open(io.BytesIO(data)).convert("RGB"), VIEW_SIDE) if data else None)


def fetch_live(client, job_id: str, side: int = VIEW_SIDE):
    """(job id, frames, fps) of the clip a running job has made so far (the growing mp4 its server streams), or
    (job id, None, None) while it has none."""
    import tempfile

    data = client.live(job_id)
    if not data:
        return job_id, None, None
    with tempfile.TemporaryDirectory(prefix="t2v-live-") as folder:
        path = Path(folder) / "live.mp4"
        path.write_bytes(data)
        try:
            frames, fps = decode(path, max_side=side)
        except (ValueError, OSError):  # not one whole frame yet
            return job_id, None, None
    return job_id, frames, fps


def fetch_clip(client, downloads: Path, job, side: int = VIEW_SIDE):
    """Download the clip into ``downloads`` (a file already there is only checked) and decode its frames (the
    longer side ``side`` pixels)."""
    fmt = next((f for f in CLIP_FORMATS if job.file(f) is not None), None)
    if fmt is None:
        raise F.FormError("The job made no video file to play (ask for mp4, webm or gif)")
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / F.clip_filename(job.request, f".{fmt}", tag=job.id[-6:].lower())  # already here: a Range request finds nothing left, then a sha256 check
    client.download(job.id, path, format=fmt)
    frames, fps = decode(path, max_side=side)
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
