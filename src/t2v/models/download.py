"""Hub downloads: which files a model needs, fetched into ``$T2V_HOME/models`` (huggingface_hub's cache layout),
and a record of them so that an interrupted download is never taken for a model.

Only the files t2v loads come down: configs, tokenizers, and each component's weights once (the fp16 variant
when wanted and present, else the full-precision files; safetensors over .bin). Before fetching, the list of
those files is written to ``$T2V_HOME/models/.t2v-downloads/<org>--<name>/<commit>.json``. A cached snapshot
that lacks one of its recorded files is an interrupted download: online, the next pull or run fetches what is
missing (huggingface_hub keeps the finished files, and resumes a broken transfer with a range request);
offline, it is refused with the command that finishes it. A snapshot without a record (copied in, or fetched
by another tool) is used as it is.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from t2v.errors import ModelUnavailable
from t2v.models.registry import lookup
from t2v.settings import Settings

logger = logging.getLogger(__name__)

WEIGHT_EXTS = (".safetensors", ".bin")
RECORDS = ".t2v-downloads"


def is_offline(settings: Settings) -> bool:
    return settings.offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def fix_hint(model: str) -> str:
    return (
        f"pass a local model folder with --model PATH, or run `t2v models pull {model}` on a machine with "
        "internet access and copy $T2V_HOME/models here; unset HF_HUB_OFFLINE/T2V_OFFLINE if this machine is online"
    )


def license_notice(model: str) -> str:
    """What users must read before ``model`` downloads (territory or use restrictions), or ""."""
    spec = lookup(model)
    return spec.license_notice if spec else ""


def weight_patterns(files: set[str], want_fp16: bool) -> list[str]:
    """The download's file patterns for a repo's file list (a pipeline's component folders, or one model's files
    at the top level, as a motion adapter repo has them)."""
    patterns = ["model_index.json", "t2v.json", "config.json", "*/*.json", "*/*.txt", "*/*.model", "tokenizer*/*"]
    pipeline = "model_index.json" in files  # then top-level weights are single-file checkpoints t2v does not load
    by_component: dict[str, list[str]] = {}
    for f in files:
        comp, _, name = f.rpartition("/")
        if (comp or not pipeline) and "/" not in comp and (name.endswith(WEIGHT_EXTS) or name.endswith(".index.json")):
            by_component.setdefault(comp, []).append(f)
    for comp, weights in sorted(by_component.items()):
        fp16 = [f for f in weights if ".fp16." in f]
        full = [f for f in weights if ".fp16." not in f]
        chosen = fp16 if want_fp16 and fp16 else full or fp16
        safe = [f for f in chosen if ".safetensors" in f]
        patterns += safe if safe else chosen
    return patterns


def wanted_files(files: set[str], want_fp16: bool) -> list[str]:
    """The files of ``files`` (a repo's listing) that a download fetches."""
    from huggingface_hub.utils import filter_repo_objects

    return sorted(filter_repo_objects(files, allow_patterns=weight_patterns(files, want_fp16)))


def record_path(cache_dir: Path | str, model_id: str, commit: str) -> Path:
    return Path(cache_dir) / RECORDS / model_id.replace("/", "--") / f"{commit}.json"


def write_record(cache_dir: Path | str, model_id: str, commit: str, files: list[str]) -> None:
    """Record the files a download of ``model_id`` at ``commit`` brings (written whole, then renamed)."""
    path = record_path(cache_dir, model_id, commit)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps({"model": model_id, "commit": commit, "files": files}, indent=1))
    os.replace(part, path)


def missing_files(cache_dir: Path | str, model_id: str, folder: Path) -> list[str]:
    """The recorded files a cached snapshot ``folder`` lacks ([] when complete, or when t2v has no record of it,
    or only a record it cannot read)."""
    try:
        files = json.loads(record_path(cache_dir, model_id, folder.name).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [f for f in files if isinstance(f, str) and not (folder / f).is_file()]


def find_snapshot(model_id: str, revision: str | None, cache_dir: Path | str) -> Path | None:
    """The cached snapshot folder of ``model_id`` at ``revision`` (no network), complete or not; None if none.

    huggingface_hub checks a cached snapshot against the repo's whole listing unless told which files were
    wanted; t2v fetches only some, so it names a file every download has and checks its own record after."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, revision=revision, cache_dir=str(cache_dir), local_files_only=True,
                                      allow_patterns=["model_index.json", "config.json"]))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None


def cached_snapshot(model_id: str, revision: str | None, cache_dir: Path | str) -> Path | None:
    """The complete cached snapshot of ``model_id`` at ``revision`` (no network), or None."""
    folder = find_snapshot(model_id, revision, cache_dir)
    return folder if folder is not None and not missing_files(cache_dir, model_id, folder) else None


def snapshot(model_id: str, revision: str, settings: Settings, *, want_fp16: bool, check=None,
             refresh: bool = False) -> Path:
    """The local snapshot of ``model_id`` at ``revision``: from the cache when complete (and ``check(folder)``
    passes), else downloaded (never when offline). ``refresh`` skips the cache (``t2v models pull``: the
    revision may have moved, and huggingface_hub fetches only files it lacks)."""
    cache = str(settings.cache_dir)
    lacking: list[str] = []
    if not refresh and (folder := find_snapshot(model_id, revision, cache)) is not None:
        lacking = missing_files(cache, model_id, folder)
        try:
            if not lacking:
                if check is not None:
                    check(folder)
                return folder
        except ModelUnavailable as e:
            logger.debug("the cached %s is not usable: %s", model_id, e)
    if not refresh:
        if is_offline(settings):
            if lacking:
                raise ModelUnavailable(
                    f"the download of {model_id} was interrupted: {len(lacking)} of its files are missing (e.g. "
                    f"{lacking[0]}); run `t2v models pull {model_id}` on a machine with internet access to finish "
                    f"it (only the missing files are fetched)") from None
            raise ModelUnavailable(f"model {model_id} is not in the cache ({cache}) and offline mode is on; "
                                   f"{fix_hint(model_id)}") from None
        if lacking:
            logger.warning("%s: finishing an interrupted download (%d files missing)", model_id, len(lacking))
    notice = license_notice(model_id)
    if notice:
        logger.warning("%s: %s", model_id, notice)
    try:
        return download(model_id, revision, cache, want_fp16=want_fp16)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelUnavailable(
            f"model {model_id} is not cached and could not be downloaded ({first[:200]}); {fix_hint(model_id)}"
        ) from None


def download(model_id: str, revision: str, cache: str, *, want_fp16: bool) -> Path:
    """Fetch the files t2v loads of ``model_id`` at ``revision`` (recorded first); the snapshot folder."""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi().model_info(model_id, revision=revision)
    listing = {s.rfilename for s in info.siblings or []}
    spec = lookup(model_id)
    own = [f for f in (spec.files if spec else ()) if f in listing]  # the model's own top-level files
    patterns = weight_patterns(listing, want_fp16) + own
    files = sorted(set(wanted_files(listing, want_fp16)) | set(own))
    if not files:
        raise ModelUnavailable(f"{model_id} at {revision} has none of the files t2v loads (model_index.json, "
                               "config.json, weights)")
    if info.sha:
        write_record(cache, model_id, info.sha, files)
    folder = Path(snapshot_download(model_id, revision=revision, cache_dir=cache, allow_patterns=patterns))
    if folder.name != info.sha:  # the branch moved in between: the files were listed at the older commit
        write_record(cache, model_id, folder.name, files)
    return folder
