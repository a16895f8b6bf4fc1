"""Helios-Mid and Helios-Distilled (``HeliosPyramidPipeline``): Helios's chunks, each denoised in a pyramid of
stages: its noise is shrunk (bilinear, x2 each time) to the smallest stage, denoised there, then at each next
stage enlarged (nearest) and noised again with block noise (the scheduler's ``gamma``) before its steps. The
distilled model's ``HeliosDMDScheduler`` predicts x0 and noises it again towards the stage's start; Helios-Mid
runs ``HeliosScheduler`` (UniPC) with CFG-Zero* (the pipeline's ``is_cfg_zero_star``: the unconditional prediction
scaled by the optimised scale, and the first step of the first stage zeroed).

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: the request's
``num_inference_steps`` are each chunk's steps over all stages (60 for Helios-Mid: 20 a stage; 6 for the distilled:
2 a stage), split evenly. The distilled model's first chunk runs twice the steps (``amplify_first_chunk`` in its
defaults, as its docs run it). Every stage's steps are steps of one run: progress and previews per step (at the
stage's size), cancel between steps, checkpoints that hold the stage's start for the distilled scheduler and
resume to the same frames at any step of any stage of any chunk.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import RunContext
from t2v.families.helios_steps import CHUNK, chunk_done, memories, memory_indices, shift_config
from t2v.models.catalog import read_index
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler

PIPELINE = "HeliosPyramidPipeline"
OPTIONS = {"amplify_first_chunk": False, "use_zero_init": True, "zero_steps": 1}  # the stock call's defaults


def is_pyramid(path) -> bool:
    """Whether the folder's model_index.json names the pyramid pipeline."""
    try:
        return read_index(Path(path)).get("_class_name") == PIPELINE
    except Exception:  # noqa: BLE001  (no index: not a pyramid folder; the loader says why)
        return False


def flags(path) -> tuple[bool, bool]:
    """(is_distilled, is_cfg_zero_star) of the folder's pipeline (its model_index.json)."""
    index = read_index(Path(path))
    return bool(index.get("is_distilled")), bool(index.get("is_cfg_zero_star"))


def stages_of(path) -> int:
    """The scheduler's pyramid stages (3 for the released models)."""
    import json

    cfg = json.loads((Path(path) / "scheduler" / "scheduler_config.json").read_text())
    return int(cfg.get("stages") or 3)


def check(path, request, *, model: str) -> None:
    """Refuse steps that do not split evenly over the stages, and sizes a stage cannot halve, with the nearest
    valid value."""
    if path is None or not is_pyramid(path):
        return
    stages = stages_of(path)
    steps = request.num_inference_steps
    if steps and steps % stages:
        near = max(stages, round(steps / stages) * stages)
        raise InvalidRequest(f"num_inference_steps: {model} splits a chunk's steps evenly over its {stages} pyramid "
                             f"stages; nearest valid: {near}", field="num_inference_steps")
    multiple = 16 * 2 ** (stages - 1)
    for name in ("width", "height"):
        side = getattr(request, name)
        if side and side % multiple:
            near = max(multiple, round(side / multiple) * multiple)
            raise InvalidRequest(f"{name}: {model} halves each chunk {stages - 1} times (its pyramid), so sides are "
                                 f"multiples of {multiple}; nearest valid: {near}", field=name)


def options(model, request) -> dict[str, Any]:
    defaults = getattr(model.source, "defaults", None) or {}
    return {**OPTIONS, **{k: v for k, v in defaults.items() if k in OPTIONS}}


def schedule(scheduler, per_stage: int, stages: int, chunks: int, amplify: bool, device) -> list[tuple[int, int, int]]:
    """(chunk, stage, step) of every step of the run, as the stock loop takes them: each stage's steps as many
    as its scheduler sets (the distilled first chunk, amplified, more)."""
    import copy

    probe, out = copy.deepcopy(scheduler), []
    for k in range(chunks):
        for stage in range(stages):
            probe.set_timesteps(per_stage, stage, device=device, mu=1.0, is_amplify_first_chunk=amplify and k == 0)
            out += [(k, stage, i) for i in range(len(probe.timesteps))]
    return out


def sample(model, request, ctx: RunContext, run) -> EngineRun:
    """The pyramid loop over :func:`t2v.families.helios.prepare`'s start."""
    import torch
    import torch.nn.functional as F
    from diffusers.pipelines.helios.pipeline_helios_pyramid import (
        HeliosPyramidPipeline, calculate_shift, optimized_scale)
    from diffusers.utils.torch_utils import randn_tensor

    path = model.source.path
    distilled, zero_star = flags(path)
    stages, opts = stages_of(path), options(model, request)
    amplify = bool(opts["amplify_first_chunk"]) and distilled
    transformer, generator, device, dtype = run.transformer, run.generator, run.device, run.dtype
    scheduler = make_scheduler(request.scheduler, model.scheduler_config)
    per_stage = request.num_inference_steps // stages
    plan = schedule(scheduler, per_stage, stages, run.chunks, amplify, device)
    patch = transformer.config.patch_size
    indices = memory_indices()
    block_noise = HeliosPyramidPipeline.sample_block_noise  # reads only self.scheduler
    state = LoopState(torch.zeros(1, run.channels, CHUNK, run.h, run.w, device=device), run.extra)
    checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
    start = checkpoints.resume(state, device)
    ctx.on_stage("denoise", start, len(plan))

    def resize(x, size, mode: str):
        b, c, f, _, _ = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, *x.shape[-2:])
        y = F.interpolate(y, size=size, mode=mode)
        return y.reshape(b, f, c, *size).permute(0, 2, 1, 3, 4)

    def begin_stage(k: int, stage: int, s: LoopState) -> None:
        if stage == 0:  # a new chunk: its noise, shrunk to the smallest stage
            x = randn_tensor((1, run.channels, CHUNK, run.h, run.w), generator=generator, device=torch.device(device),
                             dtype=torch.float32)
            for _ in range(stages - 1):
                x = resize(x, (x.shape[-2] // 2, x.shape[-1] // 2), "bilinear") * 2
            s.latents = x
        tokens = math.prod(s.latents.shape[-3:]) // math.prod(patch)
        scheduler.set_timesteps(per_stage, stage, device=device, mu=calculate_shift(tokens, *shift_config(scheduler)),
                                is_amplify_first_chunk=amplify and k == 0)
        if stage > 0:  # enlarged, and noised again with block noise so the blocks do not show
            x = resize(s.latents, (s.latents.shape[-2] * 2, s.latents.shape[-1] * 2), "nearest")
            signal = 1 - scheduler.ori_start_sigmas[stage]
            gamma = scheduler.config.gamma
            alpha = 1 / (math.sqrt(1 + (1 / gamma)) * (1 - signal) + signal)
            beta = alpha * (1 - signal) / math.sqrt(gamma)
            noise = block_noise(SimpleNamespace(scheduler=scheduler), *x.shape, patch, device, generator)
            s.latents = alpha * x + beta * noise.to(device=device, dtype=dtype)
        if distilled:
            s.extra[f"start{stage}"] = s.latents

    def step(n: int, s: LoopState) -> None:
        k, stage, i = plan[n]
        if i == 0:
            begin_stage(k, stage, s)
        long, mid, short = memories(s.extra, dtype)
        t = scheduler.timesteps[i]
        kw = dict(hidden_states=s.latents.to(dtype), timestep=t.expand(1).to(torch.int64), return_dict=False,
                  latents_history_short=short, latents_history_mid=mid, latents_history_long=long, **indices)
        out = transformer(encoder_hidden_states=run.embeds, **kw)[0]
        if run.negative is not None:
            uncond = transformer(encoder_hidden_states=run.negative, **kw)[0]
            if zero_star:
                scale = optimized_scale(out.reshape(1, -1), uncond.reshape(1, -1)).view(1, 1, 1, 1, 1).to(out.dtype)
                if stage == 0 and i <= opts["zero_steps"] and opts["use_zero_init"]:
                    out = out * 0.0
                else:
                    out = uncond * scale + request.guidance_scale * (out - uncond * scale)
            else:
                out = uncond + request.guidance_scale * (out - uncond)
        extra = (dict(cur_sampling_step=i, dmd_noisy_tensor=s.extra[f"start{stage}"], dmd_sigmas=scheduler.sigmas,
                      dmd_timesteps=scheduler.timesteps, all_timesteps=scheduler.timesteps) if distilled else {})
        s.latents = scheduler.step(out, t, s.latents, generator=generator, return_dict=False, **extra)[0]
        if stage == stages - 1 and (n + 1 == len(plan) or plan[n + 1][0] != k):
            chunk_done(s, run.stream, k)

    with resident(transformer, device, ctx.memory.offload):
        denoise(ctx, len(plan), state, step, checkpoints, start=start)
    ctx.on_stage("decode")
    return EngineRun(frames=run.stream.frames(state.extra["history"], run.chunks), warnings=ctx.warnings,
                     resumed_from_step=checkpoints.resumed)
