"""SkyReels-V2 diffusion forcing (``SkyReelsV2DiffusionForcingPipeline``): long videos made block by block, each latent
frame on its own timestep.

t2v's loop, as the stock ``__call__`` runs it, so a seed gives its frames: Wan's prompt encoding, the UniPC
schedule, then per window of at most ``base_num_frames`` (one window for a short clip; several, overlapping by
``overlap_history`` frames, for a long one) the noise from the request's generator, the previous window's last
latent frames as the prefix, one scheduler per latent frame, and the diffusion-forcing timestep matrix
(``ar_step`` > 0: asynchronous, each causal block of ``causal_block_size`` frames ``ar_step`` steps behind the
one before; 0: every frame on the same step). A prefix is re-noised by ``addnoise_condition`` from torch's
global generator, which the stock pipeline leaves unseeded: t2v seeds it from the request's seed, so frames
repeat (stock matches after ``torch.manual_seed(seed)``). Every row of every window's matrix is one step of
t2v's progress; a checkpoint holds the window's latents, the finished latents, every frame's scheduler and the
global generator, so a resumed run gives the same frames.

With an image (``SkyReelsV2DiffusionForcingImageToVideoPipeline`` on the same folder) the image's latent frame
starts the first window as its prefix; with a last image too, that image's latent frame is appended to the (one)
window, held at timestep 0, and dropped before decoding, as the stock pipeline runs first-last-frame.

Extending a clip (``SkyReelsV2DiffusionForcingVideoToVideoPipeline`` on the same folder, ``t2v extend``): the
clip's last ``overlap_history`` frames, through the VAE, are the first window's prefix, and windows follow as for a
long video. Stock returns the clip and then every decoded latent frame, the re-decoded overlap included; t2v
returns the clip and then only the new frames (the decode is the same, so they are stock's frames).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from t2v.errors import InvalidRequest
from t2v.families.base import RunContext
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.families.wan import encode_prompts, latent_stats
from t2v.sampling.base import EngineRun
from t2v.sampling.checkpoint import restore_scheduler, scheduler_state
from t2v.families.skyreels_stream import WindowStream
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler

TEXT_TOKENS = 512
# The stock call's diffusion-forcing arguments and their defaults (the request's extras, then the model's defaults).
OPTIONS = {"ar_step": 0, "causal_block_size": None, "base_num_frames": 97, "overlap_history": None,
           "addnoise_condition": 0.0}
DEFAULT_OVERLAP = 17  # frames of a clip that start its continuation when neither request nor model says


@dataclasses.dataclass(frozen=True)
class Window:
    """One pass of the long-video loop: its latent frames, the prefix frames taken from the previous window,
    and its timestep matrix, update mask and valid intervals."""

    frames: int
    prefix: int
    matrix: Any
    update: Any
    intervals: list


def options(model, request) -> dict[str, Any]:
    return merged(getattr(model.source, "defaults", None) or {}, request)


def merged(defaults: dict[str, Any], request) -> dict[str, Any]:
    """:data:`OPTIONS`, then the model's ``defaults``, then the request's extras."""
    extras = getattr(request, "extras", None) or {}
    out = dict(OPTIONS)
    out.update({k: v for k, v in defaults.items() if k in OPTIONS})
    out.update({k: v for k, v in extras.items() if k in OPTIONS and v is not None})
    return out


def layout(num_frames: int, temporal: int, opts: dict[str, Any], prefix: int = 0, *,
           block: int = 1) -> tuple[list[int], list[int], int, int]:
    """(each window's latent frames, each window's given prefix frames, the base window's latent frames, the
    overlap in latent frames (0 for a short clip)), as the stock pipelines lay a request out. InvalidRequest
    naming the field for overlap settings stock would refuse."""
    latent = (num_frames - 1) // temporal + 1
    base_frames, overlap_history = opts["base_num_frames"], opts["overlap_history"]
    if base_frames is not None and num_frames > base_frames and overlap_history is None:
        raise InvalidRequest(f"overlap_history: {num_frames} frames is more than base_num_frames ({base_frames}), so "
                             "windows must overlap; set overlap_history (17 or 37 recommended)", field="overlap_history")
    if not (overlap_history is not None and base_frames is not None and num_frames > base_frames):
        return [latent], [prefix], latent, 0
    overlap = (overlap_history - 1) // temporal + 1
    base = (base_frames - 1) // temporal + 1
    if overlap >= base:
        raise InvalidRequest(f"overlap_history: {overlap_history} frames leaves no new frames in a window of "
                             f"base_num_frames ({base_frames}); nearest valid: {(base - 2) * temporal + 1}",
                             field="overlap_history")
    count = 1 + (latent - base - 1) // (base - overlap) + 1
    sizes = [base] + [min(latent - (k * (base - overlap) + overlap) + overlap, base) for k in range(1, count)]
    return sizes, [prefix] + [overlap - overlap % block] * (count - 1), base, overlap


def whole_blocks(num_frames: int, *, temporal: int, opts: dict[str, Any], block: int, strict: bool = False) -> bool:
    """Whether every window of ``num_frames`` is whole causal blocks of ``block`` latent frames (``strict``: a
    layout stock refuses raises; else it counts as not whole)."""
    try:
        sizes = layout(num_frames, temporal, opts, block=block)[0]
    except InvalidRequest:
        if strict:
            raise
        return False
    return all(s >= block and s % block == 0 for s in sizes)


def in_blocks(num_frames: int, temporal: int, opts: dict[str, Any], block: int) -> int:
    """The fewest frames, at least ``num_frames``, whose windows are whole causal blocks (a ``seconds`` request's
    length, rounded up)."""
    n = num_frames
    while not whole_blocks(n, temporal=temporal, opts=opts, block=block) and n < num_frames + 64 * block * temporal:
        n += temporal
    return n


def check_blocks(num_frames: int, temporal: int, opts: dict[str, Any], block: int) -> None:
    """Refuse a request whose windows are not whole causal blocks of ``block`` latent frames: the stock
    schedule denoises whole blocks only, so a clip shorter than one block has no schedule at all and the
    frames past a window's last whole block would stay noise. InvalidRequest naming ``base_num_frames`` (a base
    window that is not whole blocks) or ``num_frames``, with the nearest valid value."""
    whole = functools.partial(whole_blocks, temporal=temporal, opts=opts, block=block)
    if whole(num_frames, strict=True):
        return
    latent = (num_frames - 1) // temporal + 1
    base_frames = opts["base_num_frames"]
    if base_frames is not None and num_frames > base_frames and ((base_frames - 1) // temporal + 1) % block:
        base = (base_frames - 1) // temporal + 1
        near = math.ceil(base / block) * block
        raise InvalidRequest(f"base_num_frames: {base_frames} frames are {base} latent frames, not whole causal blocks "
                             f"of {block} (causal_block_size); nearest valid: {(near - 1) * temporal + 1}",
                             field="base_num_frames")
    near = min((n for n in range(1, num_frames + 2 * block * temporal * 4, temporal) if whole(n)),
               key=lambda n: (abs(n - num_frames), n), default=None)
    what = (f"fewer than one causal block of {block} (causal_block_size)" if latent < block else
            f"which leave frames outside whole causal blocks of {block} (causal_block_size), and those would stay "
            "noise")
    raise InvalidRequest(f"num_frames: {num_frames} frames are {latent} latent frames, {what}"
                         + (f"; nearest valid: {near}" if near else ""), field="num_frames")


def plan(num_frames: int, temporal: int, timesteps, opts: dict[str, Any], block: int, prefix: int = 0, *,
         image: bool = False, end: int = 0) -> tuple[list[Window], int]:
    """The windows of a request and the overlap in latent frames (0 for a short clip), as the stock pipelines
    compute them. ``prefix``: the given latent frames that start the first window (an image's, as the
    image-to-video pipeline sets them with ``image``; a clip's, as the video-to-video pipeline does); ``end``: a
    last image's latent frames, appended to the one window and held at timestep 0. A schedule stock would refuse
    (or one it would leave partly noise: :func:`check_blocks`) is an InvalidRequest naming the field."""
    from diffusers import SkyReelsV2DiffusionForcingPipeline as Stock

    check_blocks(num_frames, temporal, opts, block)
    sizes, prefixes, base, overlap = layout(num_frames, temporal, opts, prefix, block=block)
    long, latent = len(sizes) > 1 or overlap > 0, (num_frames - 1) // temporal + 1
    if end and len(sizes) > 1:
        raise InvalidRequest(f"last_image: {num_frames} frames take {len(sizes)} windows of base_num_frames "
                             f"({opts['base_num_frames']}), and a last frame is held in one window only; nearest "
                             f"valid: num_frames {opts['base_num_frames']}", field="last_image")
    windows: list[Window] = []
    for size, given in zip(sizes, prefixes):
        # the base the stock pipelines pass: text- and video-to-video the window's own size, image-to-video the base's
        window_base = (base if image else size) if long else latent
        try:
            matrix, _, update, intervals = Stock.generate_timestep_matrix(
                None, size + end, timesteps, window_base + end, opts["ar_step"], given, block)
        except ValueError as e:  # "`ar_step` should be at least N in your setting"
            raise InvalidRequest(f"ar_step: {opts['ar_step']} is too small for this clip: {e}", field="ar_step") from None
        if end:  # the last image's frames stay as given
            matrix[:, -end:], update[:, -end:] = 0, False
        windows.append(Window(size + end, given, matrix, update, intervals))
    return windows, overlap


def block_size(model, opts: dict[str, Any]) -> int:
    """Latent frames per causal block: the request's, else the transformer config's ``num_frame_per_block``."""
    return folder_block(Path(model.source.path), opts)


def folder_block(path: Path | None, opts: dict[str, Any]) -> int:
    """:func:`block_size` for a model folder (None: not on this machine yet, so the request's or 1)."""
    own = config(path, "transformer").get("num_frame_per_block") if path is not None else None
    return opts["causal_block_size"] or own or 1


def folder_temporal(path: Path | None) -> int:
    """Frames per latent frame of a folder's VAE (Wan's 4 where the folder is not here)."""
    return (config(path, "vae").get("scale_factor_temporal") if path is not None else None) or 4


def extension(model, request, clip_frames: int, temporal: int) -> tuple[int, int]:
    """(overlap_history, num_frames) of extending a clip of ``clip_frames`` frames: the clip's last
    ``overlap_history`` frames (the request's or the model's; else 17, stock's recommendation) start the first
    window, and num_frames counts them too (``seconds``: enough latent frames after them for that many seconds;
    else the request's num_frames). InvalidRequest naming the field for a clip or settings that leave no new frame."""
    opts = options(model, request)
    overlap = opts["overlap_history"] or DEFAULT_OVERLAP
    block, latent = block_size(model, opts), (overlap - 1) // temporal + 1
    if latent % block:
        near = max(block, latent // block * block)
        raise InvalidRequest(f"overlap_history: {overlap} frames are {latent} latent frames, not whole causal blocks of "
                             f"{block}; nearest valid: {(near - 1) * temporal + 1}", field="overlap_history")
    if clip_frames < overlap:
        fits = ((clip_frames - 1) // temporal + 1) // block * block
        near = f"overlap_history {(fits - 1) * temporal + 1}" if fits >= 1 else "a clip of at least that many frames"
        raise InvalidRequest(f"extend: the clip has {clip_frames} frames, fewer than overlap_history ({overlap}) "
                             f"that start the continuation; nearest valid: {near}", field="extend")
    if request.seconds is not None:  # rounded up to whole causal blocks
        frames = (latent + math.ceil(request.seconds * request.fps / temporal) - 1) * temporal + 1
        return overlap, in_blocks(frames, temporal, {**opts, "overlap_history": overlap}, block)
    if request.num_frames <= overlap:
        raise InvalidRequest(f"num_frames: {request.num_frames} frames, counting the clip's last overlap_history "
                             f"({overlap}), leave no new frame; nearest valid: {overlap + temporal}", field="num_frames")
    return overlap, request.num_frames


def sample(model, request, ctx: RunContext) -> EngineRun:
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    c, memory, device = model.components, ctx.memory, model.plan.device
    transformer, vae = c["transformer"], c["vae"]
    dtype, opts = transformer.dtype, options(model, request)
    spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal

    # 1. The prompt (and the negative prompt), as Wan encodes them.
    ctx.on_stage("encode_prompt")
    cfg = request.guidance_scale > 1.0
    embeds, negative = encode_prompts(model, request, ctx, TEXT_TOKENS, dtype)

    # 2. The schedule, the causal blocks and the windows.
    shift = request.extras.get("flow_shift")
    scheduler = make_scheduler(request.scheduler, model.scheduler_config if shift is None else
                               {**model.scheduler_config, "flow_shift": shift})
    scheduler.set_timesteps(request.num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    block = block_size(model, opts)
    transformer.register_to_config(num_frame_per_block=block)  # as the stock call's _set_ar_attention, every run
    given = end = None  # the first window's given latent frames (image or clip), a last image's
    if ctx.video is not None:  # extending a clip: its last overlap_history frames start the first window
        with resident(vae, device, memory.offload):
            given = clip_latents(vae, ctx.video.frames[-opts["overlap_history"]:], device)
    elif ctx.image is not None:  # image-to-video: the image's latent frame (and a last image's) as stock sets them
        with resident(vae, device, memory.offload):
            given, end = image_latents(vae, [ctx.image, ctx.last_image], request, spatial, device)
    windows, overlap = plan(request.num_frames, temporal, timesteps, opts, block, 0 if given is None else given.shape[2],
                            image=ctx.image is not None, end=0 if end is None else end.shape[2])
    rows = [(k, i) for k, w in enumerate(windows) for i in range(len(w.matrix))]
    fps = [0 if int(request.fps) == 16 else 1]
    shape = (1, transformer.config.in_channels, 0, request.height // spatial, request.width // spatial)
    generator = torch.Generator("cpu").manual_seed(request.seed)
    state = LoopState(torch.zeros(shape, device=device), {"done": torch.zeros(shape, device=device), "schedulers": []})
    checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
    start = checkpoints.resume(state, device)
    frame_schedulers = []
    for saved in state.extra["schedulers"]:
        s = copy.deepcopy(scheduler)
        restore_scheduler(s, saved, device)
        frame_schedulers.append(s)
    cuda = torch.device(device).type == "cuda"

    # 3. Denoise window by window, one timestep-matrix row per step.
    ctx.on_stage("denoise", start, len(rows))

    def step(n: int, s: LoopState) -> None:
        k, i = rows[n]
        w = windows[k]
        if i == 0:  # a new window: its noise, the previous window's frames as prefix, a scheduler per frame
            held = 0 if end is None else end.shape[2]
            latents = randn_tensor((1, shape[1], w.frames - held, *shape[3:]), generator=generator,
                                   device=torch.device(device), dtype=torch.float32)
            if k == 0 and given is not None:
                latents[:, :, :w.prefix] = given[:, :, :w.prefix].to(dtype)
            elif w.prefix:
                latents[:, :, :w.prefix] = s.extra["done"][:, :, -overlap:][:, :, :w.prefix].to(dtype)
            s.latents = latents if end is None else torch.cat([latents, end.to(dtype)], dim=2)
            frame_schedulers[:] = [copy.deepcopy(scheduler) for _ in range(w.frames)]
            for fs in frame_schedulers:
                fs.set_timesteps(request.num_inference_steps, device=device)
        t, (lo, hi) = w.matrix[i], w.intervals[i]
        x = s.latents[:, :, lo:hi].to(dtype).clone()
        timestep = t.expand(1, -1)[:, lo:hi].clone()
        if opts["addnoise_condition"] > 0 and lo < w.prefix:
            factor = 0.001 * opts["addnoise_condition"]
            x[:, :, lo:w.prefix] = x[:, :, lo:w.prefix] * (1.0 - factor) + torch.randn_like(x[:, :, lo:w.prefix]) * factor
            timestep[:, lo:w.prefix] = opts["addnoise_condition"]
        kw = dict(hidden_states=x, timestep=timestep, enable_diffusion_forcing=True, fps=fps, return_dict=False)
        noise = transformer(encoder_hidden_states=embeds, **kw)[0]
        if cfg:
            uncond = transformer(encoder_hidden_states=negative, **kw)[0]
            noise = uncond + request.guidance_scale * (noise - uncond)
        for idx in range(lo, hi):
            if w.update[i][idx].item():
                s.latents[:, :, idx] = frame_schedulers[idx].step(noise[:, :, idx - lo], t[idx], s.latents[:, :, idx],
                                                                  return_dict=False)[0]
        if i == len(w.matrix) - 1:  # the window is done: keep its new frames (not a last image's, held as given)
            done, made = s.extra["done"], s.latents[:, :, :s.latents.shape[2] - (0 if end is None else end.shape[2])]
            s.extra["done"] = made if done.shape[2] == 0 else torch.cat([done, made[:, :, overlap:]], dim=2)
            stream.window_done(s.extra["done"])
        s.extra["schedulers"] = [scheduler_state(fs) for fs in frame_schedulers]
        s.extra["rng"] = torch.cuda.get_rng_state(torch.device(device)) if cuda else torch.get_rng_state()

    # the clip streamed as each window is done (an extension: the given clip, then the frames past its overlap)
    redone = 0 if ctx.video is None else (given.shape[2] - 1) * temporal + 1
    on_frames = ctx.on_frames
    if on_frames is not None and ctx.video is not None:
        on_frames = lambda decoded: ctx.on_frames(np.concatenate([ctx.video.frames, decoded[redone:]]))  # noqa: E731
    stream = WindowStream(on_frames, vae, spatial, device, memory)
    devices = [torch.device(device).index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices), resident(transformer, device, memory.offload), stream:
        seed_global_rng(request.seed, state.extra.get("rng"), cuda, device)
        denoise(ctx, len(rows), state, step, checkpoints, start=start)

    # 4. Decode every finished latent frame with the VAE's statistics (a stream decoded them all already).
    ctx.on_stage("decode")
    frames = stream.frames(state.extra["done"])
    if ctx.video is not None:  # the clip, then the new frames (past the re-decoded overlap)
        frames = np.concatenate([ctx.video.frames, frames[redone:]])
    return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)


def normalized(vae, pixels):
    """Pixels (1 or 2, 3, F, H, W) in [-1, 1] through the VAE encoder (its mode), normalised with the VAE's
    statistics, fp32."""
    import torch

    encoded = vae.encode(pixels.to(dtype=vae.dtype)).latent_dist.mode().to(torch.float32)
    mean, inv_std = latent_stats(vae, encoded)
    return (encoded - mean) * inv_std


def image_latents(vae, images, request, spatial: int, device):
    """SkyReelsV2DiffusionForcingImageToVideoPipeline's condition: the first image (and the last, when given,
    encoded with it as a batch of two) resized to the request: ((1, z_dim, 1, h, w), the last's or None) fp32."""
    import torch
    from diffusers.video_processor import VideoProcessor

    processor = VideoProcessor(vae_scale_factor=spatial)
    pixels = torch.cat([processor.preprocess(im, height=request.height, width=request.width) for im in images
                        if im is not None]).to(device, dtype=torch.float32).unsqueeze(2)
    latents = normalized(vae, pixels)
    return latents[:1], (latents[1:] if len(latents) > 1 else None)


def clip_latents(vae, frames, device):
    """SkyReelsV2DiffusionForcingVideoToVideoPipeline's prefix: the clip's last frames (uint8, already at the
    request's size) as [-1, 1] pixels through the VAE: (1, z_dim, f, h, w) fp32."""
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(frames).astype(np.float32) / 255.0).permute(3, 0, 1, 2)[None]
    return normalized(vae, 2.0 * pixels.to(device) - 1.0)  # as diffusers' VideoProcessor normalises


def seed_global_rng(seed: int, saved, cuda: bool, device) -> None:
    """Torch's global generator for the prefix re-noising: seeded from the request, or as a checkpoint left it."""
    import torch

    if saved is not None:
        (torch.cuda.set_rng_state(saved, torch.device(device)) if cuda else torch.set_rng_state(saved))
    else:
        torch.manual_seed(seed)
