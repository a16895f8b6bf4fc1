"""t2v's own denoising loop for UNet3D text-to-video models (ModelScope, Zeroscope).

It does what diffusers' ``TextToVideoSDPipeline.__call__`` does (prompt encoding, classifier-free
guidance, scheduler steps on per-frame latents, VAE decode) and adds per-step progress,
cancellation between steps, and resumable latent checkpoints.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable

from t2v.engine import checkpoint as ckpt
from t2v.engine.base import CheckpointSpec, EngineRun, StepCallback
from t2v.engine.schedulers import make_scheduler
from t2v.engine.vae import decode_chunk, decode_latents
from t2v.errors import Cancelled

if TYPE_CHECKING:
    from t2v.models.loader import LoadedModel
    from t2v.models.memory import MemoryPlan
    from t2v.request import GenerationRequest

logger = logging.getLogger(__name__)


def encode_prompt(model: LoadedModel, prompt: str, warnings: list[str]):
    """Text embeddings for ``prompt``; a prompt over the token limit is truncated with a warning."""
    import torch

    tok = model.tokenizer
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
    full = tok(prompt, padding="longest", return_tensors="pt").input_ids
    if full.shape[-1] > ids.shape[-1]:
        dropped = tok.batch_decode(full[:, tok.model_max_length - 1 : -1])[0]
        warnings.append(f"prompt truncated to {tok.model_max_length} tokens; dropped: {dropped!r}")
    with torch.inference_mode():
        emb = model.text_encoder(ids.to(model.plan.device))[0]
    return emb.to(model.text_encoder.dtype)


def fingerprint(model: LoadedModel, request: GenerationRequest) -> str:
    """Identifies a run exactly, so a checkpoint is only resumed by the run it came from."""
    data = {**request.reproducible_fields(), "hash": model.content_hash, "device": model.plan.device, "dtype": model.plan.dtype}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def resident(module, device: str, offload: bool):
    """With ``offload``, keep ``module`` on ``device`` only inside the block (model CPU offload)."""
    if not offload or device == "cpu":
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class UNet3DEngine:
    family = "modelscope"

    def run(
        self,
        model: LoadedModel,
        request: GenerationRequest,
        *,
        on_stage: Callable[[str], None],
        on_step: StepCallback,
        should_cancel: Callable[[], bool],
        checkpoint: CheckpointSpec | None = None,
        memory: MemoryPlan | None = None,
    ) -> EngineRun:
        import torch

        from t2v.models.memory import get_plan

        memory = memory or get_plan("speed")
        warnings: list[str] = []
        timings: dict[str, float] = {}
        device = model.plan.device
        t0 = time.perf_counter()
        on_stage("encode_prompt")
        cfg = request.guidance_scale > 1.0
        with resident(model.text_encoder, device, memory.offload):
            embeds = encode_prompt(model, request.prompt, warnings)
            if cfg:
                negative = encode_prompt(model, request.negative_prompt, [])
                embeds = torch.cat([negative, embeds])
        if memory.free_text_encoder:
            from t2v.models.loader import forget

            forget(model)  # the next run loads it again; this one needs the memory now
            model.text_encoder = None
        timings["encode_prompt_s"] = time.perf_counter() - t0
        if memory.uses_forward_chunking(device):
            model.unet.enable_forward_chunking(chunk_size=1, dim=1)
        else:
            model.unet.disable_forward_chunking()

        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        scale = 2 ** (len(model.vae.config.block_out_channels) - 1)
        shape = (1, model.unet.config.in_channels, request.num_frames, request.height // scale, request.width // scale)
        # Noise comes from a CPU generator in fp32 so a seed means the same clip on every device and dtype.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device, embeds.dtype)
        latents = latents * scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}

        start, resumed = 0, None
        fp = fingerprint(model, request)
        if checkpoint and checkpoint.resume:
            state = ckpt.load(checkpoint.path, fp)
            if state is not None:
                start = resumed = int(state["step"])
                latents = state["latents"].to(device, embeds.dtype)
                ckpt.restore_scheduler(scheduler, state["scheduler"], device)
                generator.set_state(state["generator"])
                logger.info("resuming from step %d of %d", start, len(timesteps))

        on_stage("denoise")
        total = len(timesteps)
        t1 = time.perf_counter()
        with resident(model.unet, device, memory.offload):
            latents = self._loop(model, scheduler, latents, timesteps, embeds, request, cfg, step_kwargs, start,
                                 on_step, should_cancel, checkpoint, fp, generator)
        timings["denoise_s"] = time.perf_counter() - t1

        if should_cancel():
            raise Cancelled("cancelled before decoding")
        on_stage("decode")
        t2 = time.perf_counter()
        with resident(model.vae, device, memory.offload):
            chunk = decode_chunk(memory.vae_chunk, request.num_frames, str(latents.device))
            frames = decode_latents(model.vae, latents, chunk=chunk)
        timings["decode_s"] = time.perf_counter() - t2
        return EngineRun(frames=frames, warnings=warnings, timings=timings, resumed_from_step=resumed)

    def _loop(self, model, scheduler, latents, timesteps, embeds, request, cfg, step_kwargs, start, on_step,
              should_cancel, checkpoint, fp, generator):
        total = len(timesteps)
        for i in range(start, total):
            if should_cancel():
                if checkpoint:
                    ckpt.save(checkpoint.path, fingerprint=fp, step=i, latents=latents, scheduler=scheduler, generator=generator)
                raise Cancelled(f"cancelled at step {i} of {total}")
            latents = self._step(model, scheduler, latents, timesteps[i], embeds, request.guidance_scale, cfg, step_kwargs)
            if checkpoint and checkpoint.every and (i + 1) % checkpoint.every == 0 and i + 1 < total:
                ckpt.save(checkpoint.path, fingerprint=fp, step=i + 1, latents=latents, scheduler=scheduler, generator=generator)
            logger.debug("step %d/%d", i + 1, total)
            on_step(i + 1, total, latents)
        return latents

    @staticmethod
    def _step(model, scheduler, latents, t, embeds, guidance: float, cfg: bool, step_kwargs):
        import torch

        with torch.inference_mode():
            model_in = torch.cat([latents] * 2) if cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            noise = model.unet(model_in, t, encoder_hidden_states=embeds, return_dict=False)[0]
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            # Schedulers work on images: fold frames into the batch, as the diffusers pipeline does.
            b, c, f, h, w = latents.shape
            flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            noise = noise.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            flat = scheduler.step(noise, t, flat, **step_kwargs).prev_sample
            return flat[None].reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
