"""What the transformer families (Wan, LTX-Video, CogVideoX, HunyuanVideo, ...) share: folder facts, the
checkpointed denoising loop, run fingerprints, meta-device modules for the planner, and diffusers-format LoRA.

A family module keeps only what is its own (prompt encoding, latents, the model call, decode); the loop that
reports progress, cancels between steps without decoding and saves checkpoints that resume bitwise is here::

    state = LoopState(latents)
    checkpoints = Checkpoints(ctx, model, request, scheduler, generator)
    start = checkpoints.resume(state, device)          # 0, or the step a checkpoint of this request reached
    denoise(ctx, len(timesteps), state, step, checkpoints, start=start)   # step(i, state) updates state.latents
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from t2v.sampling import checkpoint as ckpt
from t2v.errors import Cancelled, InvalidRequest
from t2v.models.catalog import config  # noqa: F401  (the families read their configs with it)
from t2v.families.base import Family, RunContext, read_index, resolve_class
from t2v.sampling.v2v import fingerprint
from t2v.models.adapters import AdapterPart
from t2v.models.loader import forget
from t2v.runtime import memoized

logger = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' save_lora_weights


# -- the loop ------------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """What a denoising loop carries from step to step: the latents, and ``extra`` state some schedulers keep
    outside themselves (CogVideoX DPM's previous prediction); both go into checkpoints."""

    latents: Any
    extra: dict[str, Any] = field(default_factory=dict)


def run_fingerprint(model, request, image=None, last_image=None) -> str:
    """The checkpoint fingerprint of the request, with the input images' pixels when there are some."""
    fp = ckpt.fingerprint(model, request)
    for img in (image, last_image):
        if img is not None:
            pixels = hashlib.sha256(f"{img.mode}{img.size}".encode() + img.tobytes()).hexdigest()
            fp = hashlib.sha256(f"{fp}:{pixels}".encode()).hexdigest()
    return fp


def restore_scheduler(scheduler, state: dict[str, Any], device) -> None:
    """:func:`t2v.sampling.checkpoint.restore_scheduler`, keeping the tensors a scheduler holds on the CPU
    there (UniPC keeps ``sigmas`` on the CPU): the resumed steps then compute exactly as uninterrupted ones."""
    import torch

    devices = {k: v.device for k, v in vars(scheduler).items() if isinstance(v, torch.Tensor)}
    ckpt.restore_scheduler(scheduler, state, device)
    for k, dev in devices.items():
        v = getattr(scheduler, k, None)
        if isinstance(v, torch.Tensor) and v.device != dev:
            setattr(scheduler, k, v.to(dev))


class Checkpoints:
    """Resume from and save to ``ctx.checkpoint`` (no-ops without one) for one run of one request."""

    def __init__(self, ctx: RunContext, model, request, scheduler, generator, image=None, video=None):
        self.ctx, self.scheduler, self.generator = ctx, scheduler, generator
        self.spec = ctx.checkpoint
        fp = fingerprint(run_fingerprint(model, request, image, ctx.last_image), video) if self.spec else ""
        self.fingerprint = ctx.control.fingerprint(fp) if self.spec and ctx.control is not None else fp
        self.resumed: int | None = None  # the step resumed from (for the record)

    def resume(self, state: LoopState, device) -> int:
        """The step to start from: that of a checkpoint of this very request (its latents, scheduler,
        generator and extra state restored into ``state``), else 0."""
        if not (self.spec and self.spec.resume):
            return 0
        saved = ckpt.load(self.spec.path, self.fingerprint)
        if saved is None:
            return 0
        state.latents = saved["latents"].to(device)
        state.extra = {k: v.to(device) if hasattr(v, "to") else v for k, v in saved.get("extra", {}).items()}
        restore_scheduler(self.scheduler, saved["scheduler"], device)
        self.generator.set_state(saved["generator"])
        logger.info("resuming from step %d", saved["step"])
        self.resumed = int(saved["step"])
        return self.resumed

    def save(self, step: int, state: LoopState) -> None:
        if self.spec:
            ckpt.save(self.spec, fingerprint=self.fingerprint, step=step, latents=state.latents,
                      scheduler=self.scheduler, generator=self.generator, extra=state.extra)


def denoise(ctx: RunContext, total: int, state: LoopState, step: Callable[[int, LoopState], None],
            checkpoints: Checkpoints, *, start: int = 0, stop: int | None = None) -> None:
    """Steps ``start`` .. ``stop`` (default ``total``) of ``total``: ``step(i, state)`` updates ``state``; a
    cancel between steps saves a checkpoint and raises Cancelled; periodic checkpoints every
    ``ctx.checkpoint.every`` steps; ``ctx.on_step`` after each. After the last step a cancel still stops the
    run before decoding (a resume from that checkpoint goes straight to decoding)."""
    every = ctx.checkpoint.every if ctx.checkpoint else 0
    stop = total if stop is None else stop
    for i in range(start, stop):
        if ctx.should_cancel():
            checkpoints.save(i, state)
            raise Cancelled(f"cancelled at step {i} of {total}")
        step(i, state)
        if every and (i + 1) % every == 0 and i + 1 < total:
            checkpoints.save(i + 1, state)
        ctx.on_step(i + 1, total, state.latents)
    if stop == total and ctx.should_cancel():
        checkpoints.save(total, state)
        raise Cancelled("cancelled before decoding")


# -- previews --------------------------------------------------------------------------------------------


def linear_preview(latents, factors, bias, scale: int):
    """A latent -> RGB preview of the middle frame of (B, C, F, H, W) latents through a linear map (``factors``:
    one RGB row per latent channel, ComfyUI's latent formats; the first three channels, normalised, when the
    channel count differs), upscaled ``scale`` times to about the output size (uint8, H x W x 3)."""
    import torch

    frame = latents[0, :, latents.shape[2] // 2].float().cpu()
    if frame.shape[0] == len(factors):
        rgb = torch.einsum("chw,cr->hwr", frame, torch.tensor(factors)) + torch.tensor(bias)
    else:
        rgb = frame[:3].permute(1, 2, 0)
        rgb = rgb / rgb.abs().amax().clamp(min=1e-6)
    img = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return img.repeat(scale, axis=0).repeat(scale, axis=1)


# -- memory ----------------------------------------------------------------------------------------------

GROUP_OFFLOADED = "t2v_group_offloaded"  # set on a transformer whose blocks diffusers' hooks move


def group_offload(components: dict[str, Any], device: str, names: tuple[str, ...] = ("transformer", "transformer_2")) -> None:
    """diffusers' block-level group offloading on the transformers (each block moved to ``device`` only
    while it runs), marked so the loop does not move the whole module as well."""
    import torch

    for name in names:
        module = components.get(name)
        if module is not None:
            module.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                        offload_type="block_level", num_blocks_per_group=1)
            setattr(module, GROUP_OFFLOADED, True)


class GroupOffload(Family):
    """A family whose transformers get diffusers' block-level group offload under the low plan on an
    accelerator (weights kept on the CPU, ``target`` "cpu"): one block on the device at a time."""

    def load(self, path: Path, plan, variant: str | None, target: str | None = None) -> dict[str, Any]:
        components = super().load(path, plan, variant, target)
        if target == "cpu" and plan.is_accelerator:
            group_offload(components, plan.device)
        return components


def free_text_encoders(model, memory, names: tuple[str, ...] = ("text_encoder",)) -> None:
    """Under a plan that frees the text encoders once the prompt is encoded: drop them from this run's
    components and the model from the cache (the next run loads it again; this one needs the memory now)."""
    if memory.free_text_encoder:
        forget(model)
        for name in names:
            model.components[name] = None


def scheduler_min_steps(path: Path | None) -> int:
    """Fewest steps the folder's scheduler can run: 2 when it stretches its sigmas to ``shift_terminal`` (LTX's
    FlowMatchEuler: with one sigma the stretch divides by zero, in stock diffusers too), else 1. Without a
    folder, 2: the published LTX configs set it."""
    if path is None:
        return 2
    return 2 if config(path, "scheduler", "scheduler_config.json").get("shift_terminal") else 1


# -- the planner's modules -------------------------------------------------------------------------------


@memoized("meta-modules-by-folder", 8)
def meta_modules(path: str, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The folder's modules built from their configs on the meta device (no weights), by component name:
    ``names``, or every diffusers / transformers entry of model_index.json that has a config.json."""
    import torch

    root, index, out = Path(path), read_index(Path(path)), {}
    wanted = names or tuple(k for k in index if not k.startswith("_"))
    with torch.device("meta"):
        for name in wanted:
            entry = index.get(name)
            if not (isinstance(entry, (list, tuple)) and len(entry) >= 2 and entry[0] and entry[1]):
                continue
            if not (root / name / "config.json").is_file():
                continue  # tokenizers, schedulers, processors
            cls = resolve_class(entry[0], entry[1])
            if entry[0] == "transformers":
                out[name] = cls(cls.config_class.from_pretrained(root / name)).eval()
            else:
                out[name] = cls.from_config(cls.load_config(root / name)).eval()
    return out


def params(modules: dict[str, Any]) -> dict[str, int]:
    return {n: sum(q.numel() for q in m.parameters()) for n, m in modules.items() if m is not None}


# -- LoRA in diffusers' format ---------------------------------------------------------------------------


def lora_files(adapter: Path, experts: tuple[str, ...] = ("transformer",)) -> dict[str, Path]:
    """{component: file} of a LoRA file or folder ({} if it is neither). With two ``experts`` (Wan 2.2
    A14B), a folder's ``*high_noise*`` file is for the first and its ``*low_noise*`` file for the second."""
    if adapter.is_file():
        return {experts[0]: adapter} if adapter.suffix == ".safetensors" else {}
    if not adapter.is_dir():
        return {}
    if (adapter / LORA_FILE).is_file():
        return {experts[0]: adapter / LORA_FILE}
    files = sorted(adapter.glob("*.safetensors"))
    if len(experts) > 1:
        found = split_files(files, experts)
        if found:
            return found
    return {experts[0]: files[0]} if len(files) == 1 else {}


def split_files(files: list[Path], experts: tuple[str, ...]) -> dict[str, Path]:
    """A two-expert LoRA folder's files by expert (``*high_noise*``, ``*low_noise*``); {} for any other."""
    found = {name: next((f for f in files if key in f.name), None) for name, key in zip(experts, ("high_noise", "low_noise"))}
    return {k: v for k, v in found.items() if v is not None}


def expert_targets(spec, experts: tuple[str, ...], present: tuple[str, ...]) -> dict[str, tuple[Path, float]]:
    """{component: (file, strength)} of one adapter: a two-expert folder's files each to its expert; a single
    file to the experts ``spec.experts`` names (both: each expert the model has), the first (high-noise) at
    ``spec.scale``, the second (low-noise) at ``spec.scale_low``; ``experts`` = high or low keeps one of them."""
    adapter = Path(spec.path)
    files = lora_files(adapter, experts)
    split = adapter.is_dir() and len(experts) > 1 and bool(split_files(sorted(adapter.glob("*.safetensors")), experts))
    (file,) = files.values() if not split else (None,)
    chosen = {"both": experts, "high": experts[:1], "low": experts[1:2]}[spec.experts]
    strengths = dict(zip(experts, (spec.scale, spec.scale if spec.scale_low is None else spec.scale_low)))
    out = {}
    for name in chosen:
        target = files.get(name) if split else file
        if target is not None and name in present:
            out[name] = (target, strengths[name])
    return out


class DiffusersLora(Family):
    """LoRA files in diffusers' format for a transformer family, read by the pipeline's own loader mixin
    (``lora_loader``, e.g. ``"WanLoraLoaderMixin"``: it converts the original and trainer key layouts) and
    loaded unfused beside the denoiser's weights, switched on for the runs that ask for them."""

    lora_loader: ClassVar[str] = ""
    lora_experts: ClassVar[tuple[str, ...]] = ("transformer",)
    checks_lora_shapes: ClassVar[bool] = True  # the file's "transformer." layers against the expert's, before loading

    def check_lora(self, path) -> Path:
        shown = str(path) if len(str(path)) <= 120 else str(path)[:117] + "..."
        try:
            p = Path(path).expanduser().resolve()
            if p.exists() and lora_files(p, self.lora_experts):
                return p
        except (OSError, ValueError, RuntimeError):
            pass
        raise InvalidRequest(f"lora: {shown} is not a {self.name} LoRA: give a .safetensors file or a folder with "
                             f"{LORA_FILE}", field="lora")

    def lora_hash(self, adapter: Path) -> str:
        h = hashlib.sha256()
        for name, file in sorted(lora_files(adapter, self.lora_experts).items()):
            h.update(name.encode() + file.read_bytes())
        return h.hexdigest()[:16]

    def lora_state(self, file: Path, model) -> dict[str, Any]:
        """The file's LoRA tensors in diffusers' layout for ``model`` (the loader mixin converts other layouts;
        a family without one, ``lora_loader = ""``, reads diffusers' PEFT layout as it is, ``transformer.``
        prefixed or not)."""
        import diffusers.loaders

        if not self.lora_loader:
            from safetensors.torch import load_file

            state = load_file(str(file))
            if state and not any(k.startswith("transformer.") for k in state):
                state = {f"transformer.{k}": v for k, v in state.items()}
            if not state or not all("lora" in k for k in state):
                raise ValueError("its tensors are not LoRA weights")
            return state
        mixin = getattr(diffusers.loaders, self.lora_loader)
        state = mixin.lora_state_dict(str(file))
        if isinstance(state, tuple):  # some loaders return (state, alphas)
            state = state[0]
        if not state or not all("lora" in k for k in state):
            raise ValueError("its tensors are not LoRA weights")
        expand = getattr(mixin, "_maybe_expand_t2v_lora_for_i2v", None)  # a T2V LoRA on Wan I2V, as the pipeline does
        return expand(transformer=model, state_dict=state) if expand is not None else state

    def check_loras(self, loras, default_scale: float, folder: Path | None):
        """:meth:`Family.check_loras`, then (with the model's folder here) each adapter file against the shapes of
        the expert it reaches, built on the meta device: a LoRA of another family or size is refused naming
        ``loras.N.path`` before any weights load."""
        checked = super().check_loras(loras, default_scale, folder)
        if folder is None or not self.checks_lora_shapes:
            return checked
        present = self.experts(folder) or self.lora_experts[:1]
        for i, spec in enumerate(checked):
            for expert, (file, _) in expert_targets(spec, self.lora_experts, present).items():
                st = file.stat()
                problem = lora_misfit(self, str(file), st.st_size, st.st_mtime_ns, str(folder), expert)
                if problem:
                    raise InvalidRequest(f"loras.{i}.path: {file.name} does not fit this model's {expert}: {problem}",
                                         field=f"loras.{i}.path")
        return checked

    def adapter_parts(self, present: tuple[str, ...], spec, index: int) -> list[AdapterPart]:
        """Each expert the adapter reaches (a two-expert folder's files each to its own; a single file to the
        experts ``spec.experts`` names), at its strength for that expert."""
        targets = expert_targets(spec, self.lora_experts, tuple(n for n in self.lora_experts if n in present))
        if not targets:
            raise InvalidRequest(f"loras.{index}.experts: {Path(spec.path).name} reaches no expert this model has "
                                 f"({', '.join(n for n in self.lora_experts if n in present)})",
                                 field=f"loras.{index}.experts")
        return [AdapterPart(name, file, strength, index) for name, (file, strength) in targets.items()]

    def load_adapter(self, module, part: AdapterPart, name: str) -> None:
        """The stock pipeline's ``load_lora_weights`` for one expert (``load_into_transformer_2`` for the second):
        the file read by the family's loader mixin, loaded under ``name``, unfused."""
        with warnings.catch_warnings():  # a second adapter is what t2v asks for, not a mistake
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            module.load_lora_adapter(self.lora_state(part.file, module), prefix="transformer", adapter_name=name)


@memoized("lora-misfits", 64)
def lora_misfit(family: DiffusersLora, file: str, size: int, mtime_ns: int, folder: str, expert: str) -> str:
    """Why the LoRA ``file`` does not fit ``expert`` of the model in ``folder`` ("" when it does): its layers,
    read by the family's loader mixin, against the expert's built on the meta device (no weights). Keyed on the
    file's size and time, so a job asking again reads nothing."""
    model = meta_modules(folder, (expert,))[expert]
    try:
        state = family.lora_state(Path(file), model)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        return str(e)[:200] or type(e).__name__
    layers = dict(model.named_modules())
    matched = 0
    for key, tensor in state.items():
        name = key.removeprefix("transformer.")
        kind = "lora_A" if ".lora_A." in name else "lora_B" if ".lora_B." in name else None
        if kind is None or not name.endswith(".weight"):
            continue
        layer = layers.get(name.split(f".{kind}.")[0])
        if layer is None or not hasattr(layer, "in_features"):
            continue
        matched += 1
        want = layer.in_features if kind == "lora_A" else layer.out_features
        have = tensor.shape[1] if kind == "lora_A" else tensor.shape[0]
        if tensor.ndim != 2 or have != want:
            return f"{key} has shape {tuple(tensor.shape)}, but the layer takes {want} features"
    return "" if matched else "none of its layers is a layer of this model (a LoRA of another family?)"
