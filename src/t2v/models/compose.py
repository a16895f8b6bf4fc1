"""``--model <SD 1.x model> --motion-adapter <adapter>``: the two folders joined into one ``AnimateDiffPipeline``
folder of links (nothing copied), with AnimateDiff's DDIM scheduler and a t2v.json, made once per pair."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from t2v.errors import ModelUnavailable
from t2v.models.catalog import config, read_index
from t2v.models.hub.animatediff import DDIM, DEFAULTS


def unet_class(index: dict[str, Any]) -> str | None:
    entry = index.get("unet")
    return entry[1] if isinstance(entry, (list, tuple)) and len(entry) >= 2 else None


def animatediff_scheduler(scheduler_dir: Path):
    """The DDIM scheduler AnimateDiff samples with, from an SD model's scheduler config (diffusers' examples:
    ``DDIMScheduler.from_pretrained(model, subfolder="scheduler", **DDIM)``)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_pretrained(scheduler_dir, **DDIM)


LAYOUT = 1  # bump when compose() writes a different layout: the folder name changes with it
BASE_PARTS = ("vae", "text_encoder", "tokenizer", "unet", "feature_extractor", "image_encoder")
WEIGHT_STEMS = ("diffusion_pytorch_model", "model")


def compose(base: Path, adapter: Path, root: Path) -> Path:
    """An ``AnimateDiffPipeline`` folder under ``root`` for the SD 1.x model ``base`` and the motion adapter
    ``adapter``: made once (built aside, then renamed into place, so two processes racing both end up with the
    one complete folder), named by a hash of both folders' paths and files' sizes and times (a changed file
    makes a new one). It holds real folders of links to the two models' files, AnimateDiff's DDIM scheduler and
    a t2v.json. ModelUnavailable names a base or adapter that cannot make one."""
    base, adapter, root = Path(base).resolve(), Path(adapter).resolve(), Path(root)
    index = check_base(base)
    check_adapter(adapter, base)
    out = root / f"animatediff-{folders_digest(base, adapter)}"
    if (out / "model_index.json").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=root))
    try:
        write_layout(tmp, base, index, adapter)
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "model_index.json").is_file():  # not another process's finished folder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_base(base: Path) -> dict[str, Any]:
    index = read_index(base)
    cls = index.get("_class_name")
    if cls == "StableDiffusionXLPipeline":
        raise ModelUnavailable(f"{base} is an SDXL model: AnimateDiff SDXL is not supported; give an SD 1.x model")
    if cls != "StableDiffusionPipeline" or unet_class(index) != "UNet2DConditionModel":
        raise ModelUnavailable(f"{base} is a {cls or 'folder'} model, not a Stable Diffusion 1.x StableDiffusionPipeline")
    if config(base, "unet").get("cross_attention_dim") == 1024:
        raise ModelUnavailable(f"{base} is a Stable Diffusion 2.x model; AnimateDiff's motion adapters are for SD 1.x")
    return index


def check_adapter(adapter: Path, base: Path) -> None:
    cfg, unet = config(adapter, "."), config(base, "unet")
    if cfg.get("_class_name") != "MotionAdapter":
        raise ModelUnavailable(f"{adapter} is not a motion adapter: its config.json does not name MotionAdapter")
    if cfg.get("conv_in_channels"):
        raise ModelUnavailable(f"{adapter} is a PIA (image-to-video) motion adapter, which t2v does not run")
    if not weight_files(adapter):
        raise ModelUnavailable(f"{adapter} has no diffusion_pytorch_model weights")
    # MotionAdapter's defaults where the config leaves them out: SD 1.x's four blocks of two layers
    blocks, layers = list(cfg.get("block_out_channels", (320, 640, 1280, 1280))), cfg.get("motion_layers_per_block", 2)
    if blocks != list(unet.get("block_out_channels") or ()) or layers != unet.get("layers_per_block"):
        sdxl = " (an SDXL adapter: AnimateDiff SDXL is not supported)" if len(blocks) == 3 else ""
        raise ModelUnavailable(f"{adapter} does not fit {base}'s UNet: blocks {blocks} with {layers} layers, the UNet "
                               f"has {unet.get('block_out_channels')} with {unet.get('layers_per_block')}{sdxl}")


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(WEIGHT_STEMS)
                  and p.name.endswith((".safetensors", ".bin", ".index.json")))


def folders_digest(base: Path, adapter: Path) -> str:
    h = hashlib.sha256(f"layout {LAYOUT}\0{base}\0{adapter}".encode())
    for folder in (base, adapter):
        for p in sorted(visible_files(folder)):
            st = p.stat()
            h.update(f"\0{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def visible_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def write_layout(out: Path, base: Path, index: dict[str, Any], adapter: Path) -> None:
    """model_index.json, linked components, the scheduler and t2v.json of :func:`compose`'s folder."""
    import diffusers

    layout: dict[str, Any] = {"_class_name": "AnimateDiffPipeline", "_diffusers_version": diffusers.__version__}
    for name in BASE_PARTS:
        entry = index.get(name)
        named = isinstance(entry, (list, tuple)) and len(entry) >= 2 and entry[0] and (base / name).is_dir()
        layout[name] = list(entry[:2]) if named else [None, None]
        if named:
            link_files(base / name, out / name, visible_files(base / name))
    link_files(adapter, out / "motion_adapter", [adapter / "config.json", *weight_files(adapter)])
    layout["motion_adapter"] = ["diffusers", "MotionAdapter"]
    animatediff_scheduler(base / "scheduler").save_pretrained(out / "scheduler")
    layout["scheduler"] = ["diffusers", "DDIMScheduler"]
    (out / "model_index.json").write_text(json.dumps(dict(sorted(layout.items())), indent=2) + "\n")
    own = config(base, ".", "t2v.json").get("defaults") or {}  # a tiny or trained model's own sizes and steps
    meta = {"family": "animatediff", "defaults": {**DEFAULTS, **own}, "base": str(base), "motion_adapter": str(adapter)}
    (out / "t2v.json").write_text(json.dumps(meta, indent=2) + "\n")


def link_files(src: Path, dst: Path, files: list[Path]) -> None:
    """A real folder ``dst`` of links to ``files`` (so ``rglob`` and hashing see them). A single weight file
    present only as ``X.safetensors`` or only as ``X.fp16.safetensors`` is linked under both names: the two
    models may come from downloads that chose different variants, and t2v picks one variant for all parts."""
    for f in files:
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, target)
    for stem in WEIGHT_STEMS:
        plain, half = dst / f"{stem}.safetensors", dst / f"{stem}.fp16.safetensors"
        if plain.is_symlink() != half.is_symlink():
            have, missing = (plain, half) if plain.is_symlink() else (half, plain)
            os.symlink(os.readlink(have), missing)
