"""What t2v knows about a hub model before downloading it: family, task, defaults, size, memory, licence.

Each family's card (:class:`FamilyCard`, in :mod:`t2v.models.hub`) declares its hub models as
``models = (ModelSpec(...), ...)``; :mod:`t2v.models.registry` collects them. This module imports nothing of
t2v's, so any card or family module can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from t2v.requests import ATTENTION, MASKLESS_KERNELS

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets"
# text-to-video, image-to-video, first-last-frame (a last frame too), control (VACE: clips and reference images),
# character animation (Wan-Animate: a reference image moved by pose and face videos), text-to-image
TASKS = ("t2v", "i2v", "flf", "control", "animate", "image")
# The request's input fields each task brings (what a form shows for a model)
TASK_INPUTS = {"i2v": ("image",), "flf": ("image", "last_image"),
               "control": ("control_video", "mask_video", "reference_images"),
               "animate": ("image", "control_video", "face_video", "mask_video", "background_video")}


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    description: str
    defaults: dict[str, Any]
    license: str
    download_gb: float  # what t2v downloads (fp16 variant where the repo has one)
    vram_gb: float  # approximate peak GPU memory at the defaults in fp16/bf16, no offload
    has_fp16_variant: bool
    revision: str = "main"
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())
    bundled: str | None = None  # folder name under t2v/assets: shipped with the package, never downloaded
    tasks: tuple[str, ...] = ("t2v",)  # what it makes: TASKS
    license_url: str = ""
    # Shown (and logged) before t2v downloads the model: territory or use restrictions users must see first.
    license_notice: str = ""
    # A motion adapter (AnimateDiff): the SD 1.5 model it animates when no --model is given with it.
    base_model: str | None = None
    # Files at the top of the repo that runs of this model may also load (a second stage's LoRA): downloaded with
    # the component folders, which are all a pull takes otherwise.
    files: tuple[str, ...] = ()
    # A prompt this model makes well (the forms' placeholder); blank: a generic one.
    prompt_example: str = ""

    @property
    def bundled_path(self) -> Path | None:
        return BUNDLED_DIR / self.bundled if self.bundled else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "family": self.family,
            "description": self.description,
            "tasks": list(self.tasks),
            "defaults": dict(self.defaults),
            "license": self.license,
            "license_url": self.license_url,
            "license_notice": self.license_notice,
            "download_gb": self.download_gb,
            "vram_gb": self.vram_gb,
            "fp16_variant": self.has_fp16_variant,
            "revision": self.revision,
            "notes": self.notes,
            "aliases": list(self.aliases),
            "bundled": self.bundled_path is not None,
            "base_model": self.base_model,
        }


def no_stock_arguments(index: dict[str, Any], request: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A family whose stock pipeline call needs nothing beyond the shared request fields."""
    return {}


# The kernels a denoiser whose attention goes through diffusers' attention dispatcher can use: every one when
# its attention passes no mask (Wan, SkyReels-V2, Helios, Kandinsky 5, CogVideoX, whose SDPA calls t2v routes to
# the dispatcher), the ones that take a mask where it passes
# one (LTX-Video, LTX-2, HunyuanVideo, HunyuanVideo 1.5, SANA-Video: the text's padding).
DISPATCHED: tuple[str, ...] = ATTENTION
DISPATCHED_MASKED: tuple[str, ...] = tuple(k for k in ATTENTION if k not in MASKLESS_KERNELS)


@dataclass(frozen=True)
class FamilyCard:
    """What t2v knows of a model family without importing its module: its name, the diffusers pipeline classes
    it runs (how a folder's ``model_index.json`` finds it), its request defaults, its hub models, its tiny
    builders (``t2v models make-tiny --family``), the attention kernels its denoiser takes, the stock pipeline
    call's own arguments, and ``ref``, where its code is (``module:Class``, imported the first time the family is
    used). The family class reads its declarations from its card; :mod:`t2v.models.hub` finds the cards."""

    name: str
    ref: str
    description: str
    pipelines: tuple[str, ...]
    defaults: dict[str, Any]
    tiny: dict[str, str] = field(default_factory=dict)
    models: tuple[ModelSpec, ...] = ()
    # The family's own request settings (``extras``): a t2v.requests.FamilyExtras schema, or None.
    extras: Any = None
    # The request modes it makes ("video", "i2v": video from an input image, "image": text-to-image), and whether
    # its VAE encodes an input clip (video-to-video): what lets the checks name the families that can do something.
    modes: tuple[str, ...] = ("video",)
    encodes_video: bool = False
    # The ``--attention`` values its denoiser can use (t2v.sampling.kernels): DISPATCHED for a denoiser whose
    # attention goes through diffusers' dispatcher and passes no mask, DISPATCHED_MASKED where it passes one; a
    # denoiser whose processors call PyTorch's SDPA themselves (the UNets') takes SDPA only.
    kernels: tuple[str, ...] = ("auto", "sdpa")
    # The stock pipeline call's own keyword arguments equivalent to a t2v request (the seed contract, t2v bench):
    # ``stock(index, request, defaults)`` with the folder's model_index.json, the resolved request's fields and
    # the folder's defaults.
    stock: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], dict[str, Any]] = no_stock_arguments
    # ``t2v bench``'s request fields for this family's tiny model, over its default (2 steps of the model's own
    # scheduler, the rest from the folder's defaults).
    bench: dict[str, Any] = field(default_factory=dict)
    # ``t2v bench`` on a square frame of (pixels for its tiny model, pixels for a given folder), where the
    # family's comparison has a size of its own (``--size``); None: the folder's defaults give the size.
    bench_square: tuple[int, int] | None = None
    # ``t2v bench`` builds the tiny model as a plain diffusers folder (no ``t2v.json``), so that t2v reads the
    # family's own defaults as it would for a folder made by diffusers.
    bench_plain: bool = False
    # Where the family stands in listings (``t2v models list``, the options' help), lowest first.
    order: int = 100
