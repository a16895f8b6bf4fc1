"""AnimateDiff (``AnimateDiffPipeline``): any Stable Diffusion 1.x model animated by a motion adapter.

A ``MotionAdapter`` holds temporal attention modules trained on video; ``UNetMotionModel.from_unet2d`` puts them
between the blocks of an SD 1.x UNet, which then denoises all frames of a clip together. t2v runs two layouts:

- a saved ``AnimateDiffPipeline`` (``model_index.json`` naming it; ``unet/`` a ``UNetMotionModel``, or a
  ``UNet2DConditionModel`` beside ``motion_adapter/``);
- ``--model <SD 1.5 model> --motion-adapter <adapter>``: :func:`compose` joins the two folders into that layout
  with links to their files (nothing is copied) and AnimateDiff's DDIM scheduler.

t2v's own loop does what diffusers' ``AnimateDiffPipeline.__call__`` does (CLIP prompt embeddings repeated per
frame, classifier-free guidance in one batch, fp32 noise from a CPU generator, scheduler steps on the whole
clip, per-frame VAE decode), so a seed gives the stock pipeline's frames; on top, per-step progress and
previews, cancel between steps without decoding, and checkpoints that resume bitwise.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from t2v.sampling import stepcache, v2v
from t2v.sampling.base import EngineRun
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.text import encode_prompt
from t2v.sampling.vae import decode_chunk, decode_latents, encode_frames, latent_preview
from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.models.adapters import AdapterPart
from t2v.runtime import memoized
from t2v.families.prompts import guided_embeddings
from t2v.families.lora import DiffusersLora, lora_files
from t2v.families.meta import meta_modules
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.families.modelscope import CLIP_COMPONENTS, measure_unet_video, reference_side, vae_scale
from t2v.models.compose import animatediff_scheduler, compose, unet_class  # noqa: F401  (named here too)
from t2v.models.hub.animatediff import CARD, DDIM, BASE_MODEL, DEFAULTS, LICENSE_URL, NEGATIVE_PROMPT, adapter_spec  # noqa: F401  (named here too)

MAX_FRAMES = 32  # MotionAdapter's default motion_max_seq_length (the frame positions its modules have)






class AnimateDiffFamily(DiffusersLora):
    card = CARD
    components = (*CLIP_COMPONENTS, Component("unet", ("UNet2DConditionModel", "UNetMotionModel")),
                  Component("motion_adapter", ("MotionAdapter",), required=False))
    # SD LoRAs (diffusers or kohya keys) and motion LoRAs (guoyww/animatediff-motion-lora-*), read by the
    # pipeline's own loader mixin.
    lora_loader = "StableDiffusionLoraLoaderMixin"
    lora_experts = ("unet",)
    checks_lora_shapes = False  # UNet and text-encoder parts, checked as they load (adapter_parts reads the file)
    caches = ("deepcache",)  # t2v.sampling.stepcache: UNetMotionModel walks its blocks as UNet3D does

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        tokens = config(path, "tokenizer", "tokenizer_config.json").get("model_max_length", 77) if path else 77
        return Rules(size_multiple=8, max_frames=frame_limit(path) if path else MAX_FRAMES, text_tokens=tokens,
                     modes=self.modes)

    # -- loading ---------------------------------------------------------------------------------------
    def component_specs(self, index: dict[str, Any]) -> list[Component]:
        """A saved UNetMotionModel has the motion modules in it already: its folder's adapter is not loaded."""
        specs = super().component_specs(index)
        return [c for c in specs if c.name != "motion_adapter" or unet_class(index) != "UNetMotionModel"]

    def check_index(self, path: Path, index: dict[str, Any]) -> None:
        super().check_index(path, index)
        if unet_class(index) == "UNet2DConditionModel" and not (path / "motion_adapter").is_dir():
            raise ModelUnavailable(f"{path}: its unet is a UNet2DConditionModel, which needs a motion_adapter")

    def prepare(self, components: dict[str, Any]) -> dict[str, Any]:
        adapter = components.pop("motion_adapter", None)
        if adapter is not None:
            components["unet"] = motion_unet(components["unet"], adapter)
        return components

    def adapter_parts(self, present: tuple[str, ...], spec, index: int) -> list[AdapterPart]:
        """What ``AnimateDiffPipeline.load_lora_weights`` loads from the file: its UNet part (SD layers or
        motion modules) and its CLIP text encoder part, each at the adapter's strength."""
        (file,) = lora_files(Path(spec.path), self.lora_experts).values()
        try:
            state = self.lora_state_dict(file)[0]
        except (ValueError, KeyError, RuntimeError, OSError) as e:
            raise InvalidRequest(f"loras.{index}.path: {file.name} is not a LoRA t2v can read: {str(e)[:200]}",
                                 field=f"loras.{index}.path") from None
        parts = [name for name in ("unet", "text_encoder") if any(k.startswith(f"{name}.") for k in state)]
        if not parts or not all("lora" in k for k in state):
            raise InvalidRequest(f"loras.{index}.path: {file.name} does not fit this model: its tensors are not LoRA "
                                 "weights for a UNet or a CLIP text encoder", field=f"loras.{index}.path")
        return [AdapterPart(name, file, spec.scale, index) for name in parts if name in present]

    def lora_state_dict(self, file: Path):
        import diffusers.loaders

        return getattr(diffusers.loaders, self.lora_loader).lora_state_dict(str(file))

    def load_adapter(self, module, part: AdapterPart, name: str) -> None:
        """``load_lora_into_unet`` / ``load_lora_into_text_encoder`` of the file under ``name``, unfused."""
        import diffusers.loaders

        loader = getattr(diffusers.loaders, self.lora_loader)
        state, alphas = self.lora_state_dict(part.file)
        if part.component == "unet":
            loader.load_lora_into_unet(state, alphas, module, adapter_name=name)
        else:
            loader.load_lora_into_text_encoder(state, alphas, module, prefix="text_encoder", adapter_name=name)

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        c, memory, device = model.components, ctx.memory, model.plan.device
        unet, vae = c["unet"], c["vae"]

        # 1. Encode the prompt (negative first for guidance), one copy per frame: the motion UNet folds frames into
        # the batch.
        ctx.on_stage("encode_prompt")
        cfg = request.guidance_scale > 1.0
        embeds = guided_embeddings(model, request, ctx, lambda text, said: encode_prompt(model, text, said), guided=cfg)
        embeds = embeds.repeat_interleave(request.num_frames, dim=0)

        # 2. Timesteps and the initial noise: fp32 from a CPU generator, as the stock pipeline draws it on the CPU.
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        scale = vae_scale(vae.config)
        shape = (1, unet.config.in_channels, request.num_frames, request.height // scale, request.width // scale)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        if ctx.video is not None:  # video-to-video: the input's latents noised to the strength's timestep
            timesteps = v2v.strength_timesteps(scheduler, request.num_inference_steps, request.strength)
            with resident(vae, device, memory.offload):
                chunk = decode_chunk(memory.vae_chunk, request.num_frames, device)
                init = encode_frames(vae, ctx.video.frames, chunk=chunk)
            state = LoopState(v2v.noised(scheduler, init.to(device, embeds.dtype), timesteps, generator))
        else:
            # in the run's dtype on the CPU generator, as the stock pipeline's randn_tensor draws it
            latents = torch.randn(shape, generator=generator, dtype=embeds.dtype).to(device)
            state = LoopState(latents * scheduler.init_noise_sigma)
        accepts = inspect.signature(scheduler.step).parameters
        step_kwargs = {k: v for k, v in (("eta", 0.0), ("generator", generator)) if k in accepts}
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, video=ctx.video)
        start = checkpoints.resume(state, device)

        # 3. Denoise the whole clip at each step.
        def step(i: int, s: LoopState) -> None:
            t = timesteps[i]
            x = scheduler.scale_model_input(torch.cat([s.latents] * 2) if cfg else s.latents, t)
            stepcache.at_step(unet, i, s.extra)
            noise = unet(x, t, encoder_hidden_states=embeds, return_dict=False)[0]
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + request.guidance_scale * (text - uncond)
            s.latents = scheduler.step(noise, t, s.latents, **step_kwargs, return_dict=False)[0]

        ctx.on_stage("denoise", start, len(timesteps))
        if memory.uses_forward_chunking(device):
            unet.enable_forward_chunking(chunk_size=1, dim=1)
        else:
            unet.disable_forward_chunking()
        with resident(unet, device, memory.offload):
            denoise(ctx, len(timesteps), state, step, checkpoints, start=start)

        # 4. Decode frame by frame with the SD VAE.
        ctx.on_stage("decode")
        chunk = decode_chunk(memory.vae_chunk, request.num_frames, str(device))
        with resident(vae, device, memory.offload):
            frames = decode_latents(vae, state.latents, chunk=chunk)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return latent_preview(latents, vae_scale(model.components["vae"].config))

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """The text encoder once, one guided step of the motion UNet over the whole clip (``batch`` x frames
        images), one VAE decode of ``vae_chunk`` frames."""
        return measure_unet_video(meta_parts(str(path)), frames, height, width, batch, chunking, vae_chunk,
                                  embeds_per_frame=True)

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """8 frames at the smallest side every down-sampling level of the UNet can halve."""
        def built():
            m = meta_parts(str(path))
            return m["unet"], m["vae"]

        return min(8, frame_limit(Path(path))), reference_side(Path(path), built)



# -- folder facts ----------------------------------------------------------------------------------------

def frame_limit(path: Path) -> int:
    """The frames the motion modules have positions for (``motion_max_seq_length``)."""
    key = "motion_max_seq_length"  # a UNetMotionModel's config has it, or else its folder's adapter
    return config(path, "unet").get(key) or config(path, "motion_adapter").get(key) or MAX_FRAMES


def motion_unet(unet, adapter, *, weights: bool = True):
    """``UNetMotionModel.from_unet2d(unet, adapter)``, as ``AnimateDiffPipeline.__init__`` makes it, but built
    on the meta device and handed the two models' own tensors (with ``weights``): no random init, no second
    copy of the weights."""
    import torch
    from diffusers import UNetMotionModel

    with torch.device("meta"):
        model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    if weights:
        state = unet.state_dict()
        state.update((k, v) for k, v in adapter.state_dict().items() if ".motion_modules." in k)
        model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


@memoized("animatediff-meta-parts", 4)
def meta_parts(path: str) -> dict[str, Any]:
    """The folder's text encoder, VAE and motion UNet on the meta device (for the planner)."""
    m = dict(meta_modules(path, ("text_encoder", "vae", "unet", "motion_adapter")))
    adapter = m.pop("motion_adapter", None)
    if adapter is not None and unet_class(read_index(Path(path))) == "UNet2DConditionModel":
        m["unet"] = motion_unet(m["unet"], adapter, weights=False)
    return m
