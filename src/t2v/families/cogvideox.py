"""CogVideoX 2B / 5B / 1.5-5B (``CogVideoXPipeline``, ``CogVideoXImageToVideoPipeline``): T5 text encoder,
CogVideoX transformer, CogVideoX 3D VAE.

t2v's own loop, numbered like diffusers' ``CogVideoXPipeline.__call__`` / ``CogVideoXImageToVideoPipeline.__call__``:
the same prompt encoding (no attention mask), noise in the model's dtype from a CPU generator (after the image's
latent sample for image-to-video), one batch of unconditional + conditional, the model's own rotary embeddings
(1.0's crop-region grid, 1.5's sliced table), 1.5's latent frames padded to a multiple of ``patch_size_t`` and
its ``ofs`` embedding, so a seed gives the stock pipeline's frames. CogVideoXDPMScheduler's step returns the
previous x0 prediction that the next step needs: it lives in :class:`~t2v.sampling.loop.LoopState` ``extra``, so
checkpoints resume bitwise.

Frame counts are 8k+1 (with 4x temporal compression): the VAE decodes latent frames in pairs, and an even
latent count decodes to 4 frames more than asked (13 frames would come back as 16).
"""

from __future__ import annotations

import inspect
import logging
import math
from pathlib import Path
from typing import Any

from t2v.sampling import promptcache, schedulers, v2v
from t2v.sampling.base import EngineRun
from t2v.sampling.vae import video_uint8
from t2v.sampling.offload import resident
from t2v.errors import InvalidRequest
from t2v.families.base import Component, Rules, RunContext, read_index
from t2v.families.common import GroupOffload, free_text_encoders
from t2v.families.lora import DiffusersLora
from t2v.families.meta import meta_modules, params
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.models.spec import ModelSpec
from t2v.models.hub.cogvideox import CARD, DEFAULTS_10, DEFAULTS_15, I2V_PIPELINE, LICENSE_NOTICE  # noqa: F401  (named here too)
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs

logger = logging.getLogger(__name__)

TEXT_TOKENS = 226  # the transformer's max_text_seq_length in every CogVideoX
SCHEDULERS = ("model", "ddim", "dpm++")  # the folder's own, CogVideoXDDIMScheduler, CogVideoXDPMScheduler (DPM-Solver++ 2M)
LATENT_FRAMES_PER_DECODE = 2  # AutoencoderKLCogVideoX.num_latent_frames_batch_size: why frame counts are 8k+1





class CogVideoXFamily(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    card = CARD
    components = (
        Component("tokenizer", ("T5Tokenizer", "T5TokenizerFast", "AutoTokenizer", "ByT5Tokenizer"), module=False, prompt=True),
        Component("text_encoder", ("T5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("CogVideoXTransformer3DModel",)),
        Component("vae", ("AutoencoderKLCogVideoX",)),
        Component("scheduler", ("CogVideoXDDIMScheduler", "CogVideoXDPMScheduler", "DDIMScheduler"), module=False),
    )
    denoiser = "transformer"
    caches = ("fbc", "taylorseer", "magcache", "pab", "fastercache")  # t2v.sampling.stepcache
    fastercache_layout = "BFCHW"  # [uncond, cond] batched, (B, F, C, H, W): FasterCache may skip uncond
    lora_loader = "CogVideoXLoraLoaderMixin"

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        if path is None:
            return Rules(size_multiple=16, frame_step=8, text_tokens=TEXT_TOKENS, modes=self.modes, schedulers=SCHEDULERS)
        tr, (spatial, temporal) = config(path, "transformer"), _scales(path)
        modes = ("i2v",) if read_index(path).get("_class_name") == I2V_PIPELINE else ("video",)
        return Rules(size_multiple=spatial * tr.get("patch_size", 2), frame_step=temporal * LATENT_FRAMES_PER_DECODE,
                     text_tokens=tr.get("max_text_seq_length", TEXT_TOKENS), modes=modes, schedulers=SCHEDULERS)

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        """The generic rules, then the sizes the position embeddings allow: exactly the sample size with learned
        embeddings (5B-I2V), at most the rotary table's with 1.5's sliced one (diffusers fails past it)."""
        super().check(request, path, model=model)
        if path is None:
            return
        tr, (spatial, _) = config(path, "transformer"), _scales(path)
        p = tr.get("patch_size", 2)
        for name, key in (("width", "sample_width"), ("height", "sample_height")):
            value, size = getattr(request, name), tr.get(key, 90 if name == "width" else 60) // p * p * spatial
            if value is None:
                continue
            if tr.get("use_learned_positional_embeddings") and value != size:
                raise InvalidRequest(f"{name}: {model} has learned position embeddings for {size} only; "
                                     f"nearest valid: {size}", field=name)
            if tr.get("patch_size_t") and tr.get("use_rotary_positional_embeddings") and value > size:
                raise InvalidRequest(f"{name}: {value} is more than this model's rotary position table covers; "
                                     f"nearest valid: {size}", field=name)

    def folder_defaults(self, path: Path) -> dict[str, Any]:
        """The stock pipeline's defaults for a folder: size and frames from the transformer config (sample size
        x the VAE's scale, ``sample_frames``), 16 fps for 1.5 (``patch_size_t``), 8 for 1.0."""
        tr, (spatial, _) = config(path, "transformer"), _scales(path)
        return {**self.defaults, "width": tr.get("sample_width", 90) * spatial, "height": tr.get("sample_height", 60) * spatial,
                "num_frames": tr.get("sample_frames", 49), "fps": 16 if tr.get("patch_size_t") else 8}

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch
        from diffusers.utils.torch_utils import randn_tensor
        from diffusers.video_processor import VideoProcessor

        c, memory, device = model.components, ctx.memory, model.plan.device
        path = Path(model.source.path)
        rules = self.rules(path)
        i2v = ctx.image is not None
        if ("i2v" if i2v else "video") not in rules.modes:
            raise InvalidRequest("image: this model makes videos from an image: pass one" if not i2v else
                                 "image: this model cannot start from an image", field="image")
        tr, vae = c["transformer"], c["vae"]
        cfg, dtype = tr.config, tr.dtype
        spatial, temporal = 2 ** (len(vae.config.block_out_channels) - 1), vae.config.temporal_compression_ratio

        # 1. Encode the prompt: one batch, unconditional first.
        ctx.on_stage("encode_prompt")
        guided = request.guidance_scale > 1.0
        tokens = rules.text_tokens or TEXT_TOKENS
        def texts():
            with resident(c["text_encoder"], device, memory.offload):
                out = encode_prompt(model, request.prompt, tokens, ctx.warnings)
                return torch.cat([encode_prompt(model, request.negative_prompt or "", tokens, []), out]) if guided else out

        embeds = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt, tokens=tokens,
                                     negative=(request.negative_prompt or "") if guided else None)
        embeds = embeds.to(dtype)
        free_text_encoders(model, memory)

        # 2. Timesteps, the image's latents (they draw from the generator first), the noise.
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        frames_latent = (request.num_frames - 1) // temporal + 1
        pad = -frames_latent % cfg.patch_size_t if cfg.patch_size_t else 0  # 1.5: padded, the first ones dropped
        h, w = request.height // spatial, request.width // spatial
        generator = torch.Generator("cpu").manual_seed(request.seed)
        if memory.name == "low":
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        image_latents = None
        if i2v:
            with resident(vae, device, memory.offload):
                image_latents = encode_image(vae, ctx.image, request, frames_latent + pad, generator, dtype, device)
        channels = cfg.in_channels // 2 if i2v else cfg.in_channels
        if ctx.video is not None:  # video-to-video: the input's latents noised to the strength's timestep
            timesteps = v2v.strength_timesteps(scheduler, request.num_inference_steps, request.strength)
            with resident(vae, device, memory.offload):
                init = encode_video(vae, ctx.video.frames, pad, dtype, device)
            latents = v2v.noised(scheduler, init, timesteps, generator) * scheduler.init_noise_sigma
        else:
            latents = randn_tensor((1, frames_latent + pad, channels, h, w), generator=generator,
                                   device=torch.device(device), dtype=dtype) * scheduler.init_noise_sigma
        rope = rotary_embeddings(cfg, request.height, request.width, frames_latent + pad, spatial, device)
        ofs = latents.new_full((1,), 2.0) if i2v and cfg.ofs_embed_dim is not None else None
        if cfg.use_learned_positional_embeddings and (frames_latent + pad - 1) * temporal + 1 != cfg.sample_frames:
            ctx.warnings.append(f"num_frames: this model's learned position embeddings are for {cfg.sample_frames} "
                                "frames; other counts get sinusoidal ones (as in diffusers)")

        state = LoopState(latents)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)

        # 3. Denoise.
        ctx.on_stage("denoise", start, len(timesteps))
        dpm = type(scheduler).__name__ == "CogVideoXDPMScheduler"
        step_kwargs = extra_step_kwargs(scheduler, generator)

        def step(i: int, s: LoopState) -> None:
            t = timesteps[i]
            x = scheduler.scale_model_input(torch.cat([s.latents] * 2) if guided else s.latents, t)
            if image_latents is not None:
                x = torch.cat([x, torch.cat([image_latents] * 2) if guided else image_latents], dim=2)
            kw = {"ofs": ofs} if i2v else {}
            noise = tr(hidden_states=x, encoder_hidden_states=embeds, timestep=t.expand(x.shape[0]), image_rotary_emb=rope,
                       return_dict=False, **kw)[0].float()
            if guided:
                uncond, cond = noise.chunk(2)
                noise = uncond + guidance_at(request, t) * (cond - uncond)
            if dpm:  # the previous x0 prediction goes into the next step (and into checkpoints)
                out, s.extra["old_pred_original_sample"] = scheduler.step(
                    noise, s.extra.get("old_pred_original_sample"), t, timesteps[i - 1] if i > 0 else None, s.latents,
                    **step_kwargs, return_dict=False)
            else:
                out = scheduler.step(noise, t, s.latents, **step_kwargs, return_dict=False)[0]
            s.latents = out.to(dtype)

        with resident(tr, device, memory.offload):
            denoise(ctx, len(timesteps), state, step, checkpoints, start=start)

        # 4. Decode, without 1.5's padding frames.
        ctx.on_stage("decode")
        with resident(vae, device, memory.offload):
            z = state.latents[:, pad:].permute(0, 2, 1, 3, 4)
            video = vae.decode((1 / vae.config.scaling_factor * z).to(vae.device, vae.dtype)).sample
        frames = video_uint8(VideoProcessor(vae_scale_factor=spatial), video)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        """The middle latent frame's first three channels, scaled to [-1, 1], upscaled by the VAE's factor
        (CogVideoX latents are (B, F, C, h, w))."""
        import torch

        frame = latents[0, latents.shape[1] // 2, :3].float().cpu()
        rgb = (frame / frame.abs().amax().clamp(min=1e-6)).permute(1, 2, 0)
        img = ((rgb + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        scale = 2 ** (len(model.components["vae"].config.block_out_channels) - 1)
        return img.repeat(scale, axis=0).repeat(scale, axis=1)

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text encoding, one transformer pass on the unconditional + conditional batch, one decode of the
        whole clip (the VAE decodes two latent frames at a time with a cache: its peak grows with the frame's
        area, ``vae_scales_with`` "area"). A model with learned position embeddings runs only at its sample size:
        it is measured there and its transformer figures scaled to the size asked."""
        import torch

        path = Path(path)
        m = cast(meta_modules(str(path)))
        tr, vae, rules = m["transformer"], m["vae"], self.rules(path)
        cfg, (spatial, temporal) = tr.config, _scales(path)
        f = (frames - 1) // temporal + 1
        f += -f % cfg.patch_size_t if cfg.patch_size_t else 0
        th, tw = height, width
        if cfg.use_learned_positional_embeddings:
            th, tw = cfg.sample_height * spatial, cfg.sample_width * spatial
        h, w, meta = th // spatial, tw // spatial, meta_kwargs()
        tokens = rules.text_tokens or TEXT_TOKENS
        ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
        text_peak = meta_cost(lambda: m["text_encoder"](input_ids=ids), part="text").peak
        x = torch.zeros(batch, f, cfg.in_channels, h, w, **meta)
        embeds, t = torch.zeros(batch, tokens, cfg.text_embed_dim, **meta), torch.zeros(batch, **meta)
        rope = rotary_embeddings(cfg, th, tw, f, spatial, "meta")
        kw = {"ofs": torch.zeros(1, **meta)} if cfg.ofs_embed_dim is not None else {}
        step = meta_cost(lambda: tr(hidden_states=x, encoder_hidden_states=embeds, timestep=t,
                                                     image_rotary_emb=rope, return_dict=False, **kw))
        area = height * width / (th * tw)
        step_peak, pass_flops = int(step.peak * area), int(step.flops * area)
        c = vae.config.latent_channels
        f_out = (frames - 1) // temporal + 1
        z = torch.zeros(1, c, f_out, height // spatial, width // spatial, **meta)
        decode = meta_cost(lambda: vae.decode(z), part="vae")
        vae_peak = decode.peak
        if "i2v" in rules.modes:  # the image through the encoder
            image = torch.zeros(1, 3, 1, height, width, **meta)
            vae_peak = max(vae_peak, meta_cost(lambda: vae.encode(image), part="vae").peak)
        latent_bytes = c * f * (height // spatial) * (width // spatial) * 4
        return {
            "params": params(m),
            "acts": {"text": text_peak, "transformer": step_peak, "vae": vae_peak},
            "roles": {"text": ["text_encoder"], "denoise": ["transformer"], "vae": ["vae"]},
            "step_flops": pass_flops,
            "decode_flops": decode.flops,
            "step_ops": step.ops,
            "decode_ops": decode.ops,
            "latents_bytes": latent_bytes * (1 + batch * cfg.in_channels // c),  # latents + the model's input
            "shape": (frames, height, width, frames),
            "vae_scales_with": "area",
        }

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """17 frames (5 latent frames: the VAE decodes a pair with the previous one's cache, as in long clips) at a
        side where video tokens outnumber the 226 text tokens tenfold, so activations scale with frames x area
        (within 1.5's rotary table)."""
        path = Path(path)
        rules, tr, (spatial, temporal) = self.rules(path), config(path, "transformer"), _scales(path)
        frames, p_t = 17, tr.get("patch_size_t") or 1
        token_frames = -(-((frames - 1) // temporal + 1) // p_t)
        cells = math.ceil(math.sqrt(10 * (rules.text_tokens or TEXT_TOKENS) / token_frames))
        side = cells * rules.size_multiple
        if tr.get("patch_size_t") and tr.get("use_rotary_positional_embeddings"):
            p = tr.get("patch_size", 2)
            side = min(side, *(tr.get(k, 60) // p * p * spatial for k in ("sample_height", "sample_width")))
        return frames, side

    def frames_per_latent(self, path: Path) -> int:
        return _scales(Path(path))[1]


# -- steps of the run ------------------------------------------------------------------------------------

def make_scheduler(name: str, scheduler_config: dict[str, Any]):
    """``model``: the folder's own scheduler; ``ddim`` / ``dpm++``: CogVideoX's DDIM / DPM-Solver++ from its config."""
    import diffusers

    if name == "model":
        return schedulers.make_scheduler("model", scheduler_config)
    if name not in SCHEDULERS:
        raise InvalidRequest(f"scheduler: {name} does not work with CogVideoX; choose one of: {', '.join(SCHEDULERS)}",
                             field="scheduler")
    cls = diffusers.CogVideoXDDIMScheduler if name == "ddim" else diffusers.CogVideoXDPMScheduler
    return cls.from_config({k: v for k, v in scheduler_config.items() if not k.startswith("_")})


def guidance_at(request, t) -> float:
    """The guidance at timestep ``t``: the request's, or with ``use_dynamic_cfg`` (an extra) the stock pipeline's
    cosine schedule, computed as it computes it (from the timestep's value)."""
    scale = request.guidance_scale
    if not request.extras.get("use_dynamic_cfg"):
        return scale
    n = request.num_inference_steps
    return 1 + scale * ((1 - math.cos(math.pi * ((n - t.item()) / n) ** 5.0)) / 2)


def extra_step_kwargs(scheduler, generator) -> dict[str, Any]:
    """What the stock pipeline passes to ``scheduler.step``: ``eta`` 0 and the generator where it takes them."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    return {k: v for k, v in (("eta", 0.0), ("generator", generator)) if k in accepted}


def encode_prompt(model, prompt: str, tokens: int, warnings: list[str]):
    """CogVideoXPipeline._get_t5_prompt_embeds: padded to ``tokens``, truncated, no attention mask."""
    tok, encoder = model.components["tokenizer"], model.components["text_encoder"]
    ids = tok([prompt], padding="max_length", max_length=tokens, truncation=True, add_special_tokens=True,
              return_tensors="pt").input_ids
    full = tok([prompt], add_special_tokens=True).input_ids[0]
    if len(full) > tokens:
        warnings.append(f"prompt truncated to {tokens} tokens; dropped: {tok.decode(full[tokens - 1:-1])!r}")
    return encoder(ids.to(encoder.device))[0].to(device=model.plan.device)


def encode_video(vae, frames, pad: int, dtype, device):
    """CogVideoXVideoToVideoPipeline.prepare_latents (the mode, not a sample): (F, H, W, 3) uint8 frames through
    the VAE encoder, scaled, as (1, F', C, h, w); 1.5's ``pad`` leading latent frames (dropped before decoding)
    are copies of the first."""
    import torch

    latent = vae.encode(v2v.pixels(frames, vae.device, vae.dtype)).latent_dist.mode()
    latent = (latent.to(device, dtype) * vae.config.scaling_factor).permute(0, 2, 1, 3, 4)
    return torch.cat([latent[:, :1]] * pad + [latent], dim=1) if pad else latent


def encode_image(vae, image, request, frames_latent: int, generator, dtype, device):
    """CogVideoXImageToVideoPipeline.prepare_latents: the image's latent (sampled with the generator), scaled
    (inverted for 1.5 I2V's VAE), followed by zero latent frames: (1, frames_latent, C, h, w)."""
    import torch
    from diffusers.video_processor import VideoProcessor

    spatial = 2 ** (len(vae.config.block_out_channels) - 1)
    pixels = VideoProcessor(vae_scale_factor=spatial).preprocess(image, height=request.height, width=request.width)
    pixels = pixels.to(device, dtype=dtype).unsqueeze(2)
    latent = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.sample(generator)
    latent = latent.to(device, dtype).permute(0, 2, 1, 3, 4)
    sf = vae.config.scaling_factor
    latent = 1 / sf * latent if vae.config.invert_scale_latents else sf * latent
    zeros = torch.zeros((1, frames_latent - 1, *latent.shape[2:]), device=device, dtype=dtype)
    # 1.5 also prepends the first `frames_latent % patch_size_t` frames: none once the count is padded.
    return torch.cat([latent, zeros], dim=1)


def rotary_embeddings(cfg, height: int, width: int, frames_latent: int, spatial: int, device):
    """CogVideoXPipeline._prepare_rotary_positional_embeddings (None without rotary embeddings): 1.0 fits the grid
    into the sample size's crop region; 1.5 slices a table of the sample size."""
    if not cfg.use_rotary_positional_embeddings:
        return None
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    p, p_t = cfg.patch_size, cfg.patch_size_t
    grid = (height // (spatial * p), width // (spatial * p))
    base_h, base_w = cfg.sample_height // p, cfg.sample_width // p
    if p_t is None:
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, device=device, grid_size=grid,
                                       crops_coords=get_resize_crop_region_for_grid(grid, base_w, base_h),
                                       temporal_size=frames_latent)
    return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=None, grid_size=grid,
                                   temporal_size=(frames_latent + p_t - 1) // p_t, grid_type="slice",
                                   max_size=(base_h, base_w), device=device)


def _scales(path: Path) -> tuple[int, int]:
    """(spatial, temporal) compression of the folder's VAE."""
    vae = config(path, "vae")
    return 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1), vae.get("temporal_compression_ratio", 4)
