"""``t2v train --init MODEL``: start a training run from a model ``t2v train`` made, instead of from scratch.

The new run keeps the model's autoencoder (its latent space is what the UNet learned on), and starts the UNet and
the text encoder from its weights; everything else (steps, schedule, clip-wide attention, refinement) is the new
run's own. The model's training record is kept under ``init`` in the new one's, so the whole recipe stays on file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from t2v.errors import InvalidRequest

REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "t2v.json")


def init_training(folder: str | Path) -> dict:
    """The training record of a ``t2v train`` model folder (InvalidRequest naming what is missing)."""
    path = Path(folder).expanduser()
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing:
        raise InvalidRequest(f"init: {path} is not a model folder t2v train wrote (missing {', '.join(missing)})", field="init")
    info = json.loads((path / "t2v.json").read_text(encoding="utf-8")).get("training")
    if not isinstance(info, dict):
        raise InvalidRequest(f"init: {path}/t2v.json has no training record; start from a model t2v train made", field="init")
    return info


def start_state(folder: str | Path, out: Path, prediction: str, preset: str, *, temporal_positions: bool,
                clip_attention: bool) -> dict:
    """Copy the model's autoencoder into ``out`` and return the train-state entries that skip the autoencoder
    phases. The prediction type and preset must be the model's, and what its UNet was built with (frame
    positions, clip-wide attention) cannot be left out: its weights only work with them."""
    path = Path(folder).expanduser()
    info = init_training(path)
    for key, want in (("prediction", prediction), ("preset", preset)):
        if info.get(key, want) != want:
            raise InvalidRequest(f"{key}: {path} was trained with {info[key]!r}; pass --{key} {info[key]}", field=key)
    for key, on in (("temporal_positions", temporal_positions), ("clip_attention", clip_attention)):
        if info.get(key) and not on:
            flag = key.replace("_", "-")
            raise InvalidRequest(f"{key}: {path} was trained with it; pass --{flag}", field=key)
    if (out / "vae").exists():
        shutil.rmtree(out / "vae")
    shutil.copytree(path / "vae", out / "vae")
    return {"init": str(path.resolve()), "init_training": info, "vae_done": True, "vae_steps": info.get("vae_steps"),
            "decoder_steps": info.get("decoder_steps", 0), "vae_jitter": info.get("vae_jitter", 0.0)}


def load_weights(folder: str | Path, unet, text_encoder) -> None:
    """Load the model's UNet and text encoder weights into the freshly built ones (same preset)."""
    from diffusers import UNet3DConditionModel
    from transformers import CLIPTextModel

    path = Path(folder)
    try:
        unet.load_state_dict(UNet3DConditionModel.from_pretrained(path, subfolder="unet").state_dict())
        text_encoder.load_state_dict(CLIPTextModel.from_pretrained(path, subfolder="text_encoder").state_dict())
    except RuntimeError as e:  # shapes differ: another preset or architecture
        raise InvalidRequest(f"init: {path} does not fit this preset's architecture ({str(e).splitlines()[0]})",
                             field="init") from None
