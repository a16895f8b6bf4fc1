"""A model family is a spec: what it recognises, what it loads, what it accepts, and how it runs.

The shape follows diffusers' pipelines: components declared once, then a numbered run (check the request,
encode the prompt, prepare latents, denoise, decode). t2v's families run their own loop over the diffusers
components, so per-step progress, cancel, checkpoints, previews and the memory planner work for every one.

A family is a :class:`Family` subclass, one module each (:mod:`t2v.families.modelscope`, ``wan``, ``sd``).
Third-party families register through the ``t2v.families`` entry point group: the entry point names a
:class:`Family` subclass (or instance), e.g. in a plugin's pyproject.toml::

    [project.entry-points."t2v.families"]
    mymodel = "my_plugin.family:MyFamily"
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, TYPE_CHECKING

from t2v.errors import InvalidRequest, ModelUnavailable, out_of_resources
from t2v.models.catalog import CATALOG, read_index  # noqa: F401  (read_index: named here for the families)
from t2v.models.spec import TASK_INPUTS, FamilyCard, ModelSpec
from t2v.models.deferred import Deferred
from t2v.sampling import promptcache, runtime
from t2v.models import weightfiles
from t2v.models.precision import load_module
from t2v.sampling.runtime import prepared
from t2v.models.adapters import AdapterPart
from t2v.models.lora import adapter_hash, check_lora, decoder_adapter, load_adapter
from t2v.requests import LoraSpec

if TYPE_CHECKING:
    import numpy as np

    from t2v.sampling.base import CheckpointSpec, EngineRun
    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.planner.plans import MemoryPlan


MODES = ("video", "i2v", "image")  # text-to-video, image-to-video (video mode with an input image), text-to-image


@dataclass(frozen=True)
class Component:
    """One entry of a family's ``model_index.json``: its name and the classes a folder may name for it.

    ``classes`` are class names in diffusers or transformers (``model_index.json`` says which library);
    a folder naming any other class is refused before anything loads. ``module``: it has weights (loaded in
    the plan's dtype, with the fp16 variant on accelerators, and moved to the device); tokenizers,
    schedulers and image processors do not.
    """

    name: str
    classes: tuple[str, ...]
    module: bool = True
    required: bool = True
    weight_stem: str = "diffusion_pytorch_model"  # "model" for transformers modules
    prompt: bool = False  # only encodes prompts: loaded on first use (a prompt-cache hit never loads it)


@dataclass(frozen=True)
class Rules:
    """What a family accepts: sizes, frame counts, prompt length and modes."""

    size_multiple: int = 8
    frame_step: int = 1  # valid frame counts are frame_step * k + 1 (1: any count)
    max_frames: int | None = None  # e.g. the frame-position embeddings a UNet3D folder has
    text_tokens: int | None = None  # prompt tokens the text encoder takes (longer prompts are truncated)
    modes: tuple[str, ...] = ("video",)
    schedulers: tuple[str, ...] | None = None  # the --scheduler names that work with this model (None: all)
    min_steps: int = 1  # 2 where the scheduler stretches its sigmas to a terminal value (one step divides by 0)
    # The one attention kernel this folder's denoiser runs with (Kandinsky 5's sparse NABLA attention: flex), which
    # ``auto`` resolves to and which no other kernel replaces; None: any the family's card offers.
    kernel: str | None = None
    kernel_why: str = ""

    def check(self, request, *, model: str = "this model") -> None:
        """Raise InvalidRequest naming the field and the nearest valid value."""
        mode = "image" if request.mode in ("image", "sequence") else ("i2v" if getattr(request, "image", None) else "video")
        if mode not in self.modes:
            what = {"video": "text-to-video", "i2v": "image-to-video (from an input image)", "image": "images"}[mode]
            field_ = "image" if mode == "i2v" else "model"
            raise InvalidRequest(f"{field_}: {model} cannot make {what}; it supports: {', '.join(self.modes)}", field=field_)
        for name in ("width", "height"):
            v = getattr(request, name)
            if v is not None and v % self.size_multiple:
                raise InvalidRequest(f"{name}: {v} is not a multiple of {self.size_multiple}, which this model needs; "
                                     f"nearest valid: {nearest_multiple(v, self.size_multiple)}", field=name)
        if self.schedulers and request.scheduler and request.scheduler not in self.schedulers:
            raise InvalidRequest(f"scheduler: {request.scheduler} does not work with {model}; choose one of: "
                                 f"{', '.join(self.schedulers)}", field="scheduler")
        steps = getattr(request, "num_inference_steps", None)
        if steps is not None and steps < self.min_steps:
            raise InvalidRequest(f"num_inference_steps: {model}'s scheduler needs at least {self.min_steps} steps (it "
                                 f"stretches its schedule to a terminal sigma); nearest valid: {self.min_steps}",
                                 field="num_inference_steps")
        attention = str(getattr(request, "attention", "auto") or "auto")
        if self.kernel and attention not in ("auto", self.kernel):
            raise InvalidRequest(f"attention: {model} runs {self.kernel_why}, which only the {self.kernel} kernel takes; "
                                 f"nearest valid: {self.kernel}", field="attention")
        n = request.num_frames
        if mode != "image" and n is not None:
            if self.frame_step > 1 and (n - 1) % self.frame_step:
                lo = (n - 1) // self.frame_step * self.frame_step + 1
                best = lo if n - lo <= lo + self.frame_step - n else lo + self.frame_step
                raise InvalidRequest(f"num_frames: {n} is not {self.frame_step}k+1, which this model needs; "
                                     f"nearest valid: {best}", field="num_frames")
            if self.max_frames and n > self.max_frames:
                raise InvalidRequest(f"num_frames: {n} is more than this model's frame-position embeddings cover "
                                     f"({self.max_frames}); nearest valid: {self.max_frames}", field="num_frames")


def refuse_in_one_run(request, names: tuple[str, ...], *, model: str, how: str) -> None:
    """A longer video a model makes in one run from one prompt (``how`` it makes it): the segments' own settings
    ``names`` are refused by name, and so is an image beside a clip it continues (``extend``)."""
    for name in names:
        if getattr(request, name, None) is not None:
            raise InvalidRequest(f"{name}: {model} makes long videos {how}, in one run from one prompt; leave {name} "
                                 "out", field=name)
    if getattr(request, "extend", None) and getattr(request, "image", None):
        raise InvalidRequest(f"image: {model} continues the clip given as extend from its last frames; leave image "
                             "out", field="image")


def nearest_multiple(v: int, m: int) -> int:
    return max(m, int(round(v / m)) * m)


@dataclass
class RunContext:
    """What the runner hands a family's :meth:`Family.run`."""

    on_stage: Callable[..., None]  # (stage); for "denoise" also (first step to run, steps in all)
    on_step: Callable[[int, int, Any], None]  # (steps done, total, latents)
    should_cancel: Callable[[], bool]
    memory: MemoryPlan
    checkpoint: CheckpointSpec | None = None
    image: Any = None  # a PIL RGB image for image-to-video
    last_image: Any = None  # a PIL RGB image for the last frame (first-last-frame)
    video: Any = None  # t2v.inputs.InputVideo for video-to-video (frames fitted to the request), with its sha256
    control: Any = None  # t2v.control.ControlInputs for VACE control (video, mask, reference images)
    warnings: list[str] = field(default_factory=list)
    # A stream of the clip as it is made (t2v.export.stream): a family that finishes frames before the end
    # (windows) calls it with the clip's finished frames so far (uint8, each call a longer prefix); None: nobody
    # watches, so nothing is decoded early.
    on_frames: Callable[[Any], None] | None = None
    # The run's hold on its model's adapters (t2v.models.adapters.Lease; None for a model without a host): a
    # stage that runs with another LoRA set switches through it.
    adapters: Any = None


class Family:
    """Base class of a family spec. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    pipelines: ClassVar[tuple[str, ...]] = ()  # model_index.json "_class_name" values recognised
    components: ClassVar[tuple[Component, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}  # request defaults for a folder without t2v.json
    modes: ClassVar[tuple[str, ...]] = ("video",)
    denoiser: ClassVar[str] = "unet"  # the component that runs each step (LoRA target, planner's big stage)
    caches: ClassVar[tuple[str, ...]] = ()  # the step caches (t2v.requests.CACHES) this family takes
    long_method: ClassVar[str] = ""  # how native_long makes a long clip in one run (the record's long.method)
    # a transformer carrying the prompt's tokens at every size: the planner fits its numbers over three dry runs
    fits_reference: ClassVar[bool] = False
    # the memory plans under which the VAE decodes in fixed spatial tiles, every frame of a tile at once, when
    # measure() gives that tile's peak (vae_tile): the planner then scales it with the frames
    tiled_plans: ClassVar[tuple[str, ...]] = ()
    # the components whose blocks stream to the device one at a time under the low plan on an accelerator (block-level
    # group offload, t2v.sampling.offload, applied by the loader once weights are stored as the run asks: a
    # transformer's blocks, a text encoder's layers); the others move whole
    streamed: ClassVar[tuple[str, ...]] = ()
    encodes_video: ClassVar[bool] = False  # video-to-video (request.video): its VAE encodes the input clip
    makes_sound: ClassVar[bool] = False  # its runs return the clip's sound (EngineRun.audio): LTX-2
    # `t2v models make-tiny --family NAME`: NAME -> "module:function(out: Path, seed: int, fp16_variant: bool)"
    tiny: ClassVar[dict[str, str]] = {}
    models: ClassVar[tuple[ModelSpec, ...]] = ()  # the hub models the family declares
    # t2v's own families declare name, description, pipelines, defaults, modes, encodes_video, tiny and models
    # once, in their card (t2v.models.hub); a plugin family may set the attributes itself.
    card: ClassVar[FamilyCard | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        card = cls.__dict__.get("card")
        if card is not None:
            cls.name, cls.description, cls.pipelines = card.name, card.description, card.pipelines
            cls.defaults, cls.tiny, cls.models = dict(card.defaults), dict(card.tiny), card.models
            cls.modes, cls.encodes_video = card.modes, card.encodes_video

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        """The request rules for the folder at ``path`` (None: not on disk yet, the family's generic rules)."""
        return Rules(modes=self.modes)

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        if getattr(request, "video", None):
            if not self.encodes_video:
                can = ", ".join(sorted(n for n, c in CATALOG.all_cards().items() if c.encodes_video))
                raise InvalidRequest(f"video: {model} ({self.name}) cannot start from a video yet; video-to-video "
                                     f"works with the {can} families", field="video")
            if getattr(request, "image", None):
                raise InvalidRequest("video: give an input video or an input image, not both", field="video")
        if getattr(request, "last_image", None):
            if not getattr(request, "image", None):
                raise InvalidRequest("last_image: give the first frame as image too (first-last-frame)",
                                     field="last_image")
            if not self.takes_last_image(path):
                raise InvalidRequest(f"last_image: {model} ({self.name}) cannot end on a given frame; the Wan 2.1 "
                                     "FLF2V, Wan 2.2 A14B image-to-video, SkyReels-V2 DF and LTX-2 models can", field="last_image")
        given = [n for n in ("control_video", "reference_images") if getattr(request, n, None)]
        if given and not self.takes_control(path):
            raise InvalidRequest(f"{given[0]}: {model} ({self.name}) takes no control inputs; the Wan VACE models do "
                                 "(Wan-AI/Wan2.1-VACE-1.3B-diffusers, Wan-AI/Wan2.1-VACE-14B-diffusers)", field=given[0])
        for name in ("face_video", "background_video"):
            if getattr(request, name, None) and name not in self.control_fields(path):
                raise InvalidRequest(f"{name}: {model} ({self.name}) takes no {name.replace('_', ' ')}; the Wan-Animate "
                                     "models do (Wan-AI/Wan2.2-Animate-14B-Diffusers)", field=name)
        if getattr(request, "no_audio", False) and not self.makes_sound:
            raise InvalidRequest(f"no_audio: {model} ({self.name}) makes silent clips, so there is no sound to drop; "
                                 "leave --no-audio out (LTX-2 models make sound)", field="no_audio")
        rules = self.rules(path)
        rules.check(request, model=model)
        if getattr(request, "is_long", False) and request.mode == "video":
            self.check_long(request, rules.modes, model=model)
        runtime.check(self, request, model=model)

    def check_long(self, request, modes: tuple[str, ...], *, model: str) -> None:
        """A longer video (:mod:`t2v.extend`): the model must continue a clip; once the request is resolved, its
        overlap must leave new frames and its segments stay under the limit."""
        from t2v.extend.plan import check_continues, continuation_kind, plan_segments  # deferred: imports numpy
        able = sorted(n for n, c in CATALOG.all_cards().items() if continuation_kind(c.modes, c.encodes_video))
        check_continues(modes, self.encodes_video, model=model, family=self.name, able=able)
        if None not in (request.num_frames, request.fps, request.seed):
            plan_segments(request, clip_frames=1 if request.extend else 0,
                          continuation=continuation_kind(modes, self.encodes_video))

    def native_long(self, model: LoadedModel, request, clip=None) -> Any:
        """A longer video (``seconds``, or ``extend`` with ``clip`` the clip decoded) this family makes in one run
        of its own (diffusion forcing): the request for that run; None (the default) makes it in segments
        (:mod:`t2v.extend`)."""
        return None

    def folder_defaults(self, path: Path) -> dict[str, Any]:
        """Request defaults for a folder without ``t2v.json`` (default: the family's own; a family whose
        configs say more, e.g. CogVideoX's sample size, overrides this)."""
        return dict(self.defaults)

    # -- loading ---------------------------------------------------------------------------------------
    def component_specs(self, index: dict[str, Any]) -> list[Component]:
        """The components to load for a folder with this ``model_index.json``."""
        return [c for c in self.components if c.required or _named(index, c.name)]

    def check_index(self, path: Path, index: dict[str, Any]) -> None:
        """Refuse a folder whose model_index.json lacks a required component or names a class this family
        does not load (ModelUnavailable naming it)."""
        missing = [c.name for c in self.components if c.required and (not _named(index, c.name) or not (path / c.name).is_dir())]
        if missing:
            raise ModelUnavailable(f"{path} is not a complete {self.name} model: missing {', '.join(missing)}")
        for c in self.component_specs(index):
            if not _named(index, c.name):
                continue
            cls = index[c.name][1]
            if cls not in c.classes:
                raise ModelUnavailable(f"{path}: {c.name} is a {cls}, which the {self.name} family does not load; "
                                       f"expected one of: {', '.join(c.classes)}")
            config = path / c.name / "config.json"
            if c.module and (path / c.name).is_dir():
                try:
                    ok = isinstance(json.loads(config.read_text()), dict)
                except FileNotFoundError:
                    raise ModelUnavailable(f"{path}: {c.name} has no config.json (a diffusers component folder holds "
                                           "its config.json beside its weights)") from None
                except (OSError, ValueError) as e:
                    raise ModelUnavailable(f"{config} is not valid JSON: {e}") from None
                if not ok:
                    raise ModelUnavailable(f"{config} is not a JSON object")

    def load(self, path: Path, plan: DevicePlan, variant: str | None, target: str | None = None,
             files: dict[str, Path] | None = None) -> dict[str, Any]:
        """Every component of the folder, built with the class model_index.json names (one this family
        allows), modules in the plan's dtype on ``target`` (default the plan's device); a component named in
        ``files`` from that single file instead (:meth:`check_files` checked it)."""
        index = read_index(path)
        self.check_index(path, index)
        out: dict[str, Any] = {}
        lazy = promptcache.enabled()
        for c in self.component_specs(index):
            file = (files or {}).get(c.name)
            if not _named(index, c.name):
                out[c.name] = None
            elif c.prompt and lazy:  # loaded when a prompt is encoded, never on a prompt-cache hit
                out[c.name] = Deferred(c.name, functools.partial(self.load_one, path, index, c, plan, variant, target,
                                                                 file))
            else:
                out[c.name] = self.load_one(path, index, c, plan, variant, target, file)
        return self.prepare(out)

    def check_files(self, path: Path, files: dict[str, str]) -> dict[str, Path]:
        """The single weight files of a request (component -> file), each read and checked against the
        component the folder's config builds before anything loads (:func:`t2v.models.weightfiles.check`);
        InvalidRequest naming the field and the file otherwise. Returns component -> resolved path."""
        index = read_index(path)
        out = {}
        for name, file in files.items():
            if not _named(index, name):
                present = [n for n in ("transformer", "transformer_2", "unet", "vae") if _named(index, n)]
                raise InvalidRequest(f"{name}: {path.name} has no {name} to take from a file; it has: "
                                     f"{', '.join(present)}", field=name)
            try:
                info = weightfiles.read(Path(file).expanduser())
                weightfiles.check(resolve_class(*index[name][:2]), info, path, name)
            except ModelUnavailable as e:
                raise InvalidRequest(f"{name}: {e}", field=name) from None
            out[name] = Path(os.path.realpath(info.path))
        return out

    def load_one(self, path: Path, index: dict[str, Any], c: Component, plan: DevicePlan, variant: str | None,
                 target: str | None = None, file: Path | None = None):
        """One component of :meth:`load` (from ``file`` when given): ModelUnavailable naming it when it does not
        load (memory and missing libraries raised as they are: the same folder may load on the next try)."""
        library, cls_name = index[c.name][:2]
        try:
            if file is not None:
                obj = weightfiles.load(resolve_class(library, cls_name), weightfiles.read(file), path, c.name,
                                       plan.torch_dtype)
            else:
                obj = self.load_component(path, c, resolve_class(library, cls_name), plan, variant)
        except Exception as e:
            if out_of_resources(e):  # missing libraries and memory: the same folder may load on the next try
                raise  # as is: the service retries the job (t2v.service.worker)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            # An OSError (a read error, a file being copied) is kept as the cause: the service retries those too.
            raise ModelUnavailable(f"could not load {c.name} from {path / c.name}: {first[:300]}") from (
                e if isinstance(e, OSError) else None)
        if c.module:
            obj = obj.to(target or plan.device).eval().requires_grad_(False)
        return obj

    def load_component(self, path: Path, component: Component, cls, plan: DevicePlan, variant: str | None):
        """Load one component (override for special cases). A byte-level BPE Llama tokenizer (Llama 3's, as
        HunyuanVideo's repos have) is read as its tokenizer.json says: transformers 5's ``LlamaTokenizerFast``
        rebuilds every tokenizer as a SentencePiece-style one and would split Llama 3 text into wrong ids."""
        if not component.module:
            if cls.__name__ in ("LlamaTokenizer", "LlamaTokenizerFast") and byte_level(path / component.name):
                from transformers import PreTrainedTokenizerFast

                return PreTrainedTokenizerFast.from_pretrained(path, subfolder=component.name)
            return cls.from_pretrained(path, subfolder=component.name)
        return load_module(cls, path, component.name, component.weight_stem, plan.torch_dtype, variant)

    def prepare(self, components: dict[str, Any]) -> dict[str, Any]:
        """A hook after loading (e.g. patching modules); returns the components."""
        return components

    def takes_control(self, path: Path | None) -> bool:
        """Whether the model in ``path`` takes control inputs (``control_video``, ``mask_video``,
        ``reference_images``: VACE); none does by default."""
        return False

    def control_fields(self, path: Path | None) -> tuple[str, ...]:
        """The control inputs the model in ``path`` takes (what a form shows): VACE's three when it takes control."""
        return TASK_INPUTS["control"] if self.takes_control(path) else ()

    def clip_is_control(self, path: Path | None) -> bool:
        """Whether the model takes its input clip as its control video (VACE): then it takes no other clip to start
        from (``video``, ``extend``)."""
        return self.takes_control(path)

    def takes_last_image(self, path: Path | None) -> bool:
        """Whether the model in ``path`` makes first-last-frame videos (``last_image``); none does by default."""
        return False

    # -- running ---------------------------------------------------------------------------------------
    def run(self, model: LoadedModel, request, ctx: RunContext) -> EngineRun:
        """:meth:`sample` without autograd (``torch.inference_mode``), with the run's LoRA adapters switched on
        (:meth:`~t2v.models.loader.LoadedModel.using`), on the model as the request's speed options shape it for
        this run (:func:`t2v.sampling.runtime.prepared`)."""
        import torch

        with model.using() as lease, torch.inference_mode(), prepared(self, model, request, ctx) as run_model:
            return self.sample(run_model, request, replace(ctx, adapters=lease))

    def sample(self, model: LoadedModel, request, ctx: RunContext) -> EngineRun:
        """Encode the prompt, denoise with t2v's own loop (progress through ``ctx.on_step``, cancel between
        steps without decoding, checkpoints) and decode to (F, H, W, 3) float frames in [0, 1]."""
        raise NotImplementedError(f"the {self.name} family has no video runner")

    def preview(self, model: LoadedModel, latents) -> np.ndarray:
        """A cheap RGB preview (uint8, H x W x 3) of the middle frame of the current latents."""
        from t2v.sampling.vae import latent_preview  # deferred: imports numpy

        return latent_preview(latents)

    # -- planning --------------------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """A meta-device dry run (see :mod:`t2v.planner.memory`): a dict with ``params`` (per component),
        ``acts`` (peak activation bytes: ``text``, the denoiser's name, ``vae``), ``step_flops``,
        ``decode_flops``, ``step_ops`` and ``decode_ops`` (operator calls), ``latents_bytes``, ``shape`` = (frames, height, width, vae_chunk) and ``roles``
        ({"text": [...], "denoise": [...], "vae": [...]} component names)."""
        raise NotImplementedError(f"the {self.name} family has no memory estimate")

    def guidance_passes(self, request) -> int:
        """Model passes per step: 2 with classifier-free guidance, 1 without (or with embedded guidance)."""
        return 2 if request.guidance_scale > 1.0 else 1

    def prompt_tokens(self, path: Path, request, defaults: dict[str, Any]) -> int | None:
        """The prompt tokens a run of ``request`` encodes (longer prompts are truncated), by the request's settings,
        then the model's ``defaults``; None: the family does not say. The planner's upper bound counts from it."""
        return self.rules(path).text_tokens

    def denoised_frames(self, request, defaults: dict[str, Any]) -> int | None:
        """Frames the denoiser sees at once when it sees fewer than the request's (a window of a long video, by
        the request's settings, then the model's ``defaults``): what the planner measures it at. None: all."""
        return None

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """(frames, side) of the small dry run the planner scales from."""
        return 8, 64

    def frames_per_latent(self, path: Path) -> int:
        """Video frames per latent frame (temporal compression; 1 for per-frame VAEs)."""
        return 1

    # -- LoRA ------------------------------------------------------------------------------------------
    lora_experts: ClassVar[tuple[str, ...]] = ()  # the components a LoRA reaches (default: the denoiser)

    def check_lora(self, path: str | Path) -> Path:
        """The adapter at ``path`` (t2v's PEFT adapter folder, see :mod:`t2v.models.lora`) or InvalidRequest."""
        return check_lora(path)

    def lora_hash(self, adapter: Path) -> str:
        return adapter_hash(adapter)

    def experts(self, folder: Path | None) -> tuple[str, ...] | None:
        """The denoising experts of the model in ``folder`` a LoRA can reach (None: not known before download)."""
        names = self.lora_experts or (self.denoiser,)
        if folder is None:
            return None if len(names) > 1 else names
        return tuple(n for n in names if (Path(folder) / n).is_dir()) or names[:1]

    def check_loras(self, loras: tuple[LoraSpec, ...], default_scale: float, folder: Path | None) -> tuple[LoraSpec, ...]:
        """Each adapter found (InvalidRequest naming ``loras.N.path``), its strengths filled in, and its experts
        checked against the model's: ``experts`` and ``scale_low`` are for models with two experts."""
        experts, out = self.experts(folder), []
        for i, spec in enumerate(loras):
            try:
                path = self.check_lora(spec.path)
            except InvalidRequest as e:
                raise InvalidRequest(f"loras.{i}.path: {str(e).removeprefix('lora: ')}", field=f"loras.{i}.path") from None
            high, low = spec.scales(default_scale)
            if experts is not None and len(experts) < 2:
                for name, off in (("experts", spec.experts == "both"), ("scale_low", spec.scale_low is None)):
                    if not off:
                        raise InvalidRequest(f"loras.{i}.{name}: this model has one denoiser; only a two-expert model "
                                             "(Wan 2.2 A14B) takes experts and scale_low; leave it out",
                                             field=f"loras.{i}.{name}")
                low = None
            out.append(spec.model_copy(update={"path": str(path), "scale": high, "scale_low": low}))
        return tuple(out)

    def adapter_parts(self, present: tuple[str, ...], spec: LoraSpec, index: int) -> list[AdapterPart]:
        """What adapter ``spec`` (entry ``index`` of the request's ``loras``) puts on which of the ``present``
        components: for t2v's own adapter folders the denoiser, and the VAE for one with a decoder part."""
        adapter = Path(spec.path)
        return [AdapterPart(target, part, spec.scale, index)
                for part, target in ((adapter, self.denoiser), (decoder_adapter(adapter), "vae"))
                if part is not None and target in present]

    def load_adapter(self, module, part: AdapterPart, name: str) -> None:
        """Load ``part``'s adapter into ``module`` under ``name``, unfused (:class:`t2v.models.adapters.AdapterHost`
        switches it on and off)."""
        load_adapter(module, part.file, name)


def byte_level(folder: Path) -> bool:
    """Whether the tokenizer.json in ``folder`` is a byte-level BPE (GPT-2 / Llama 3 style)."""
    try:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    parts = [data.get("pre_tokenizer") or {}]
    parts += parts[0].get("pretokenizers") or []
    return any(isinstance(p, dict) and p.get("type") == "ByteLevel" for p in parts)


def _named(index: dict[str, Any], name: str) -> bool:
    v = index.get(name)
    return isinstance(v, (list, tuple)) and len(v) >= 2 and v[0] is not None and v[1] is not None


_LIBRARIES = ("diffusers", "transformers")
# Pipeline packages of diffusers whose own modules a model_index.json names by the package (LTX-2's connectors
# and vocoder: ["ltx2", "LTX2TextConnectors"]).
PIPELINE_PACKAGES = ("ltx2",)


def resolve_class(library: str, name: str):
    """The class ``name`` from ``library`` (diffusers, transformers or one of diffusers' :data:`PIPELINE_PACKAGES`:
    nothing else is imported)."""
    if library in PIPELINE_PACKAGES:
        library = f"diffusers.pipelines.{library}"
    elif library not in _LIBRARIES:
        raise ModelUnavailable(f"model_index.json names library {library!r}; t2v loads only {' and '.join(_LIBRARIES)}")
    try:
        return getattr(importlib.import_module(library), name)
    except AttributeError:
        raise ModelUnavailable(f"{library} has no class {name!r} (model_index.json); upgrade {library}?") from None
