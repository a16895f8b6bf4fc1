"""AnyFlow (``AnyFlowPipeline``): Wan 2.1 distilled into a flow map, sampled in any number of steps.

The transformer takes each step's start timestep ``t`` and its target ``r`` (the next sigma, in timestep units)
and predicts the mean velocity between them, so one checkpoint runs in 1, 2, 4 or 8 steps. t2v's own loop,
numbered like the stock ``__call__``, so a seed gives its frames: Wan's prompt encoding (UMT5, 512 tokens), fp32
noise from a CPU generator in the transformer's frame-major layout ``(B, F, C, H, W)``, the folder's
``FlowMapEulerDiscreteScheduler``, the conditional and (with guidance, which the released checkpoints distil into
their weights) unconditional passes batched as stock batches them, then Wan's VAE with its latent statistics.
Per-step progress and previews, cancel between steps without decoding, checkpoints that resume to the same frames,
the planner's dry run. LoRA: Wan's loader mixin (``WanLoraLoaderMixin``), as the stock pipeline has it.

A folder naming ``AnyFlowFARPipeline`` runs the causal variant chunk by chunk (:mod:`t2v.families.anyflow_far`),
from text or from an image.

The FAR models make a longer video (``seconds``) in one run, chunk by chunk, and continue a clip (``extend``,
the stock pipeline's video-to-video): the clip's last frames are the context chunks, cached and never denoised.

Step caches: a step's timestep pair changes the whole schedule of a flow map, so diffusers' hooks (which reuse
a block's output from one step to the next) are refused by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families import anyflow_far
from t2v.families.base import Component, RunContext, Rules, refuse_in_one_run
from t2v.families.dryrun import measured, text_peak
from t2v.families.common import GroupOffload
from t2v.families.lora import DiffusersLora
from t2v.families.meta import meta_modules
from t2v.families.wan import TEXT_TOKENS, WanFamily, encode_prompts, latent_stats
from t2v.models.catalog import config
from t2v.models.hub.anyflow import CARD
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.vae import video_uint8


class AnyFlowFamily(GroupOffload, DiffusersLora):
    card = CARD
    long_method = "causal chunks"  # the FAR models: seconds and extend in one run
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False,
                  prompt=True),
        Component("text_encoder", ("UMT5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("AnyFlowTransformer3DModel", "AnyFlowFARTransformer3DModel")),
        Component("vae", ("AutoencoderKLWan",)),
        Component("scheduler", ("FlowMapEulerDiscreteScheduler",), module=False),
    )
    denoiser = "transformer"
    caches = ()  # a flow map's steps jump between timestep pairs: no block output carries to the next step
    lora_loader = "WanLoraLoaderMixin"

    def rules(self, path: Path | None) -> Rules:
        vae, tr = (config(path, "vae"), config(path, "transformer")) if path is not None else ({}, {})
        step = int(vae.get("scale_factor_temporal") or 4)
        far = path is not None and anyflow_far.is_far(path)  # the causal model also starts from an image
        patch = max((tr.get("compressed_patch_size" if far else "patch_size") or (1, 2, 2))[1:])
        return Rules(size_multiple=int(vae.get("scale_factor_spatial") or 8) * patch,
                     frame_step=step, max_frames=(int(tr.get("rope_max_seq_len") or 1024) - 1) * step + 1,
                     text_tokens=TEXT_TOKENS, modes=self.modes if far or path is None else ("video",),
                     schedulers=("model",))

    def check_long(self, request, modes: tuple[str, ...], *, model: str) -> None:
        """The FAR models (they take an image: ``i2v`` in ``modes``) make ``seconds`` and ``extend`` in one run, chunk
        by chunk from one prompt; ``overlap`` is the clip's frames given as context (12k+1: whole chunks). The
        others make no longer video (they neither continue a clip nor start from an image)."""
        if "i2v" not in modes:
            return super().check_long(request, modes, model=model)
        refuse_in_one_run(request, ("prompt_schedule", "continue_strength"), model=model, how="chunk by chunk")
        if request.overlap is not None:
            if not request.extend:
                raise InvalidRequest(f"overlap: {model} (AnyFlow FAR) makes seconds in one run; overlap is the frames "
                                     "of a clip it continues (extend)", field="overlap")
            anyflow_far.check_context(request.overlap)

    def native_long(self, model, request, clip=None):
        """FAR: ``seconds`` at the request's fps as one run (4k+1 frames, chunk by chunk); with a clip
        (``extend``), the run that continues its last ``overlap`` frames (:func:`t2v.families.anyflow_far.extension`)."""
        if not anyflow_far.is_far(model.source.path):
            return None
        return anyflow_far.extension(model, request, clip)

    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        if anyflow_far.is_far(model.source.path):
            return anyflow_far.sample(model, request, ctx)
        import torch
        from diffusers.utils.torch_utils import randn_tensor
        from diffusers.video_processor import VideoProcessor

        c, memory, device = model.components, ctx.memory, model.plan.device
        transformer, vae = c["transformer"], c["vae"]
        dtype = transformer.dtype

        # 3. The prompt (and with guidance the negative prompt, first in the batch as stock puts it).
        ctx.on_stage("encode_prompt")
        embeds, negative = encode_prompts(model, request, ctx, TEXT_TOKENS, dtype)
        text = embeds if negative is None else torch.cat([negative, embeds])

        # 4. The noise, fp32 from the request's generator, then frame-major in the transformer's dtype.
        s, t = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
        shape = (1, transformer.config.in_channels, (request.num_frames - 1) // t + 1, request.height // s,
                 request.width // s)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        noise = randn_tensor(shape, generator=generator, device=torch.device(device), dtype=torch.float32)
        state = LoopState(noise.permute(0, 2, 1, 3, 4).to(dtype))

        # 6. The flow map's schedule: each step from timestep t to the next sigma's r.
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        steps, train = len(scheduler.timesteps), scheduler.config.num_train_timesteps
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        ctx.on_stage("denoise", start, steps)

        def step(i: int, st: LoopState) -> None:
            ts, r = scheduler.timesteps[i], scheduler.sigmas[i + 1] * train
            if ts == r:  # a step that goes nowhere, as stock skips it
                return
            x = st.latents if negative is None else torch.cat([st.latents] * 2)
            frames = x.shape[1]
            out = transformer(hidden_states=x, timestep=ts.expand(x.shape[0]).unsqueeze(-1).repeat((1, frames)),
                              r_timestep=r.expand(x.shape[0]).unsqueeze(-1).repeat((1, frames)),
                              encoder_hidden_states=text, return_dict=False)[0]
            if negative is not None:
                uncond, cond = out.chunk(2)
                out = uncond + request.guidance_scale * (cond - uncond)
            st.latents = scheduler.step(out, ts, st.latents, return_dict=False)[0]

        with resident(transformer, device, memory.offload):
            denoise(ctx, steps, state, step, checkpoints, start=start)

        # 7. Decode with the VAE's statistics (channels first again).
        ctx.on_stage("decode")
        with resident(vae, device, memory.offload):
            latents = state.latents.permute(0, 2, 1, 3, 4).to(vae.device, vae.dtype)
            mean, inv_std = latent_stats(vae, latents)
            video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
        return EngineRun(frames=video_uint8(VideoProcessor(vae_scale_factor=s), video), warnings=ctx.warnings,
                         resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        """Wan's latent preview, channels first."""
        return WanFamily.preview(self, model, latents.permute(0, 2, 1, 3, 4))

    def guidance_passes(self, request) -> int:
        return 2 if request.guidance_scale > 1.0 else 1

    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text encoding, one transformer pass of ``batch`` (guidance batches both), one decode."""
        import torch

        m = cast(meta_modules(str(path)))
        tr, vae, meta = m["transformer"], m["vae"], meta_kwargs()
        spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
        f, h, w = (frames - 1) // temporal + 1, height // spatial, width // spatial
        text = text_peak(m["text_encoder"], TEXT_TOKENS)
        x = torch.zeros(batch, f, tr.config.in_channels, h, w, **meta)
        ts = torch.zeros(batch, f, **meta)
        text_states = torch.zeros(batch, TEXT_TOKENS, tr.config.text_dim, **meta)
        if anyflow_far.is_far(path):  # the causal model: its last chunk, attending to the cache of all before it
            step = meta_cost(lambda: anyflow_far.meta_step(tr, path, x, text_states))
        else:
            step = meta_cost(lambda: tr(hidden_states=x, timestep=ts, r_timestep=ts, return_dict=False,
                                        encoder_hidden_states=text_states))
        z = torch.zeros(1, vae.config.z_dim, f, h, w, **meta)
        decode = meta_cost(lambda: vae.decode(z), part="vae")
        latent_bytes = vae.config.z_dim * f * h * w * 4
        return measured(m, acts={"text": text, "transformer": step.peak, "vae": decode.peak},
                        roles={"text": ["text_encoder"], "denoise": ["transformer"], "vae": ["vae"]}, step=step,
                        decode=decode, passes=1, latents_bytes=2 * latent_bytes, frames=frames, height=height,
                        width=width, vae_scales_with="area")

    def reference_shape(self, path: Path) -> tuple[int, int]:
        return WanFamily.reference_shape(self, path)

    def frames_per_latent(self, path: Path) -> int:
        return int(config(Path(path), "vae").get("scale_factor_temporal") or 4)
