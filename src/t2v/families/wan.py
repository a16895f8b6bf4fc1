"""Wan 2.1 / 2.2 (``WanPipeline``, ``WanImageToVideoPipeline``): UMT5 text encoder, Wan transformer(s), 3D VAE.

t2v's own loop, numbered like diffusers' ``WanPipeline.__call__`` / ``WanImageToVideoPipeline.__call__``: the
same prompt encoding, fp32 noise from a CPU generator, separate conditional and unconditional passes, the
two-expert switch of Wan 2.2 A14B at ``boundary_ratio`` (``guidance_scale_2`` for the low-noise expert),
TI2V-5B's per-token timesteps (``expand_timesteps``) and image conditioning, so a seed gives the stock
pipeline's frames. On top: per-step progress and previews, cancel between steps without decoding, and
checkpoints that resume to the same frames (UniPC's multistep history is part of the scheduler state saved).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from t2v.models.precision import compute_dtype
from t2v.sampling import promptcache, v2v
from t2v.sampling.base import EngineRun
from t2v.sampling.vae import video_uint8
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.errors import InvalidRequest
from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.families import wan_vace
from t2v.families.common import GroupOffload, free_text_encoders
from t2v.families.lora import DiffusersLora
from t2v.families.dryrun import measured
from t2v.families.meta import meta_modules
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise, linear_preview
from t2v.models.hub.wan import CARD, NEGATIVE_PROMPT  # noqa: F401  (named here too)
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs

logger = logging.getLogger(__name__)

TEXT_TOKENS = 512  # the pipelines' max_sequence_length (and what 2.1 I2V's image cross-attention assumes)
SCHEDULERS = ("model", "unipc", "dpm++")  # the flow-matching ones; a FlowMatchEuler folder takes only "model"
# ComfyUI's linear Wan 2.1 latent -> RGB map (comfy/latent_formats.py, Wan21): rows are latent channels.
_RGB_FACTORS = ((-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
                (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
                (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
                (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861))
_RGB_BIAS = (-0.1835, -0.0868, -0.3360)


def tiled_decode_cost(vae, z, frames: int, height: int, width: int):
    """The cost of Wan's tiled decode (the low plan's) of latents ``z``: one tile decoded (every frame, causally),
    and the decoded tiles it keeps until they are blended into the clip, and the clip with a quarter more for the
    blend, counted; None for a clip of one tile or less, which decodes untiled. Decoding every tile on the meta
    device takes a minute or more at 480p; against that dry run this reads 31% over at 832x480x81 and 2% over at
    1280x720x81 (where the denoiser's peak is the larger anyway)."""
    import torch

    spatial = vae.config.scale_factor_spatial
    side, stride = vae.tile_sample_min_height // spatial, vae.tile_sample_stride_height // spatial
    h, w = z.shape[-2:]
    if h <= side and w <= side:
        return None
    tiles = (-(-max(h - side, 0) // stride) + 1) * (-(-max(w - side, 0) // stride) + 1)
    one = meta_cost(lambda: vae.decode(torch.zeros(*z.shape[:3], side, side, dtype=z.dtype, device=z.device)),
                    part="vae")
    elt = next(vae.parameters()).dtype.itemsize
    tile_out, clip = 3 * frames * (side * spatial) ** 2 * elt, 3 * frames * height * width * elt
    return one._replace(peak=one.peak + (tiles - 1) * tile_out + int(1.25 * clip), flops=one.flops * tiles, ops=one.ops * tiles)


class WanFamily(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    card = CARD
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False, prompt=True),
        Component("text_encoder", ("UMT5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("WanTransformer3DModel", wan_vace.VACE_CLASS)),
        Component("transformer_2", ("WanTransformer3DModel", wan_vace.VACE_CLASS), required=False),
        Component("vae", ("AutoencoderKLWan",)),
        Component("scheduler", ("UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler",
                                "DPMSolverMultistepScheduler"), module=False),
        Component("image_encoder", ("CLIPVisionModel", "CLIPVisionModelWithProjection"), required=False, weight_stem="model"),
        Component("image_processor", ("CLIPImageProcessor",), module=False, required=False),
    )
    denoiser = "transformer"
    caches = ("fbc", "taylorseer", "magcache", "pab", "fastercache")  # t2v.sampling.stepcache
    lora_loader = "WanLoraLoaderMixin"  # diffusers, original Wan and musubi key layouts
    lora_experts = ("transformer", "transformer_2")  # A14B: *high_noise* and *low_noise* files

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        if path is None:
            return Rules(size_multiple=16, frame_step=4, text_tokens=TEXT_TOKENS, modes=self.modes, schedulers=SCHEDULERS)
        index, vae, tr = read_index(path), config(path, "vae"), _transformer_config(path)
        step = vae.get("scale_factor_temporal") or 4
        if index.get("_class_name") == "WanImageToVideoPipeline":
            modes: tuple[str, ...] = ("i2v",)  # the stock pipeline needs an image
        else:  # (a VACE model's first frame is a reference image or the control video's)
            modes = ("video", "i2v") if index.get("expand_timesteps") and not wan_vace.is_vace(path) else ("video",)
        flow = config(path, "scheduler", "scheduler_config.json")
        return Rules(size_multiple=(vae.get("scale_factor_spatial") or 8) * max(tr.get("patch_size", (1, 2, 2))[1:]),
                     frame_step=step, max_frames=(tr.get("rope_max_seq_len", 1024) - 1) * step + 1,
                     text_tokens=_text_tokens(path, tr), modes=modes,
                     schedulers=SCHEDULERS if flow.get("use_flow_sigmas") else ("model",))

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        super().check(request, path, model=model)
        if getattr(request, "video", None) and wan_vace.is_vace(path):
            raise InvalidRequest(f"video: {model} (Wan VACE) takes its input clip as control_video", field="video")
        if path is not None and getattr(request, "image", None) and not getattr(request, "last_image", None):
            tr = _transformer_config(path)
            if tr.get("image_dim") is not None and tr.get("pos_embed_seq_len") is not None:
                raise InvalidRequest(f"last_image: {model} (Wan 2.1 FLF2V) makes a video between two frames: give "
                                     "the last frame as last_image too", field="last_image")

    def takes_control(self, path: Path | None) -> bool:
        return path is None or wan_vace.is_vace(path)  # (a hub model is known once downloaded; the run checks)

    def takes_last_image(self, path: Path | None) -> bool:
        """WanImageToVideoPipeline's ``last_image``: an image-to-video model without TI2V's expanded timesteps
        whose image cross-attention, if it has one, takes two images (FLF2V's ``pos_embed_seq_len``)."""
        if path is None:
            return True  # known once downloaded; the run checks again
        tr = _transformer_config(path)
        return ("i2v" in self.rules(path).modes and not read_index(path).get("expand_timesteps")
                and (tr.get("image_dim") is None or tr.get("pos_embed_seq_len") is not None))

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch
        from diffusers.video_processor import VideoProcessor

        c, memory, device = model.components, ctx.memory, model.plan.device
        path = Path(model.source.path)
        index, rules = read_index(path), self.rules(path)
        i2v = ctx.image is not None
        if ("i2v" if i2v else "video") not in rules.modes:
            raise InvalidRequest("image: this model makes videos from an image: pass one" if not i2v else
                                 "image: this model cannot start from an image", field="image")
        experts = [m for m in (c.get("transformer"), c.get("transformer_2")) if m is not None]
        first, vae, tokens = experts[0], c["vae"], rules.text_tokens or TEXT_TOKENS
        dtype = first.dtype
        spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
        expand = bool(index.get("expand_timesteps"))

        # 1. Encode the prompt (and the image, for Wan 2.1 I2V's image cross-attention).
        ctx.on_stage("encode_prompt")
        embeds, negative = encode_prompts(model, request, ctx, tokens, dtype)
        image_embeds = None
        if i2v and first.config.image_dim is not None:
            with resident(c["image_encoder"], device, memory.offload):
                shown = ctx.image if ctx.last_image is None else [ctx.image, ctx.last_image]
                image_embeds = encode_image(model, shown).to(dtype)

        # 2. Timesteps and initial noise: fp32 from a CPU generator, as the stock pipeline draws it.
        shift = request.extras.get("flow_shift")  # the flow schedule's shift, where the request sets its own
        config = model.scheduler_config if shift is None else {**model.scheduler_config, "flow_shift": shift}
        scheduler = make_scheduler(request.scheduler, config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        vace = hasattr(first.config, "vace_layers")
        refs = wan_vace.references_of(ctx.control) if vace else 0
        frames_latent = (request.num_frames - 1) // temporal + 1 + refs  # VACE: a latent frame per reference
        h, w = request.height // spatial, request.width // spatial
        channels = vae.config.z_dim if i2v else first.config.in_channels
        generator = torch.Generator("cpu").manual_seed(request.seed)
        if memory.name == "low":
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        if ctx.video is not None:  # video-to-video: the input's latents noised to the strength's timestep
            timesteps = v2v.strength_timesteps(scheduler, request.num_inference_steps, request.strength)
            with resident(vae, device, memory.offload):
                latents = v2v.noised(scheduler, encode_video(vae, ctx.video.frames).to(device), timesteps, generator)
        else:
            latents = torch.randn((1, channels, frames_latent, h, w), generator=generator, dtype=torch.float32).to(device)
        cond = Conditioning(mask=torch.ones(latents.shape, dtype=torch.float32, device=device) if expand else None)
        if i2v:
            with resident(vae, device, memory.offload):
                cond = image_condition(vae, ctx.image, request, latents, expand, last=ctx.last_image)
        elif vace:  # the control stream
            with resident(vae, device, memory.offload):
                cond.control, cond.control_scale = wan_vace.condition(vae, first, ctx.control, request, device)
        if ctx.video is None:  # (video-to-video set its own begin index)
            # As WanPipeline does. The image-to-video and VACE pipelines leave it to the scheduler, which finds the
            # first step by its timestep: from 334 steps on the first two are equal (999, 999), so it starts one
            # step late and fails on the last one. Where the first is unique (the stock pipelines' working range)
            # both start at 0: the same frames.
            scheduler.set_begin_index(0)

        state = LoopState(latents)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)

        # 3. Denoise: the high-noise expert while t >= boundary, then the low-noise one, each resident only
        # while it runs under the low memory plan.
        ctx.on_stage("denoise", start, len(timesteps))
        total = len(timesteps)
        boundary = index.get("boundary_ratio")
        boundary_t = boundary * scheduler.config.num_train_timesteps if boundary is not None else None
        guidance_2 = request.guidance_scale_2 if request.guidance_scale_2 is not None else request.guidance_scale
        segments = _segments(timesteps, start, boundary_t, len(experts)) or [(0, [])]
        for expert_index, steps in segments:
            expert = experts[expert_index]
            guidance = request.guidance_scale if expert_index == 0 else guidance_2

            def step(i: int, s: LoopState, expert=expert, guidance=guidance) -> None:
                noise = predict(expert, s.latents, timesteps[i], cond, embeds, negative, image_embeds, guidance)
                s.latents = scheduler.step(noise, timesteps[i], s.latents, return_dict=False)[0]

            first_step = steps[0] if steps else total
            with resident(expert, device, memory.offload and bool(steps)):
                denoise(ctx, total, state, step, checkpoints, start=first_step, stop=steps[-1] + 1 if steps else total)
        latents = state.latents

        # 4. Decode with the VAE's latent statistics.
        ctx.on_stage("decode")
        if cond.first_frame is not None:
            latents = (1 - cond.first_frame) * cond.latents + cond.first_frame * latents
        latents = latents[:, :, refs:]  # (VACE: the references' frames are not decoded)
        with resident(vae, device, memory.offload):
            latents = latents.to(vae.device, vae.dtype)
            mean, inv_std = latent_stats(vae, latents)
            video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
        frames = video_uint8(VideoProcessor(vae_scale_factor=spatial), video)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        """ComfyUI's linear latent -> RGB map for 16-channel latents (the first three channels, scaled, for
        Wan 2.2's 48), middle frame, upscaled by the VAE's spatial factor."""
        return linear_preview(latents, _RGB_FACTORS, _RGB_BIAS, model.components["vae"].config.scale_factor_spatial)

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text encoding, one transformer pass (the unconditional pass runs after it, separately: the
        same peak, twice the FLOPs with guidance), one decode of the whole clip: Wan's causal VAE decodes
        every latent frame in one call, whatever ``vae_chunk``, one latent frame at a time, so its peak
        grows with the frame's area, hardly with the frame count (``vae_scales_with``: "area")."""
        import torch

        path = Path(path)
        m = cast(meta_modules(str(path)))
        tr, vae, rules = m.get("transformer") or m["transformer_2"], m["vae"], self.rules(path)
        spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
        f, h, w = (frames - 1) // temporal + 1, height // spatial, width // spatial
        tokens, meta = rules.text_tokens or TEXT_TOKENS, meta_kwargs()
        ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
        text_peak = meta_cost(lambda: m["text_encoder"](input_ids=ids), part="text").peak  # a mask would need its values
        image_embeds = None
        if m.get("image_encoder") is not None:
            cfg = m["image_encoder"].config
            pixels = torch.zeros(1, cfg.num_channels, cfg.image_size, cfg.image_size, **meta)
            image_peak = meta_cost(lambda: m["image_encoder"](pixel_values=pixels, output_hidden_states=True),
                                   part="text").peak
            text_peak = max(text_peak, image_peak)
            if tr.config.image_dim is not None:
                images = 2 if tr.config.pos_embed_seq_len is not None else 1  # FLF2V: the first and the last frame
                image_embeds = torch.zeros(images, (cfg.image_size // cfg.patch_size) ** 2 + 1, tr.config.image_dim, **meta)
        p = tr.config.patch_size
        x = torch.zeros(1, tr.config.in_channels, f, h, w, **meta)
        t, step_args = self.meta_timestep(path, f, (h // p[1]) * (w // p[2]), meta, tr)
        embeds = torch.zeros(1, tokens, tr.config.text_dim, **meta)
        control = wan_vace.meta_stream(tr, f, h, w) if hasattr(tr.config, "vace_layers") else {}
        step = meta_cost(lambda: tr(hidden_states=x, timestep=t, encoder_hidden_states=embeds,
                                    encoder_hidden_states_image=image_embeds, return_dict=False, **control, **step_args))
        latent_bytes = vae.config.z_dim * f * h * w * 4
        z = torch.zeros(1, vae.config.z_dim, f, h, w, **meta)
        decode = tiled_decode_cost(vae, z, frames, height, width) if vae_chunk == 1 else None  # the low plan's
        if decode is None:
            decode = meta_cost(lambda: vae.decode(z), part="vae")
        vae_peak = decode.peak
        if "i2v" in rules.modes or control:  # the image (2.1 I2V: then black frames), VACE's clip, through the encoder
            clip = torch.zeros(1, 3, 1 if read_index(path).get("expand_timesteps") else frames, height, width, **meta)
            vae_peak = max(vae_peak, meta_cost(lambda: vae.encode(clip), part="vae").peak)
        acts = {"text": text_peak, "transformer": step.peak + (batch - 1) * latent_bytes, "vae": vae_peak}
        roles = {"text": [n for n in ("text_encoder", "image_encoder") if m.get(n) is not None],
                 "denoise": [n for n in ("transformer", "transformer_2") if m.get(n) is not None], "vae": ["vae"]}
        return measured(m, acts=acts, roles=roles, step=step, decode=decode, passes=batch,
                        latents_bytes=latent_bytes + tr.config.in_channels * f * h * w * 4,  # latents + the model's input
                        frames=frames, height=height, width=width, vae_scales_with="area")

    def meta_timestep(self, path: Path, frames: int, tokens_per_frame: int, meta: dict[str, Any], transformer):
        """The dry run's timestep (one, or one per token for Wan 2.2 TI2V) and any more transformer arguments
        (``transformer``: the meta module the dry run calls)."""
        import torch

        if read_index(path).get("expand_timesteps"):
            return torch.zeros(1, frames * tokens_per_frame, **meta), {}
        return torch.zeros(1, **meta), {}

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """9 frames (3 latent frames) at the smallest side of 64 or more the model accepts."""
        m = self.rules(Path(path)).size_multiple
        return 9, -(-64 // m) * m

    def frames_per_latent(self, path: Path) -> int:
        return config(Path(path), "vae").get("scale_factor_temporal") or 4


# -- steps of the run ------------------------------------------------------------------------------------

class Conditioning:
    """What the transformer sees beside the latents: ``latents`` (the image's, normalised) and, for Wan 2.1
    I2V, its mask channels concatenated (``concat``); for TI2V-5B the ``first_frame`` mask (0 on the image's
    latent frame) that also sets per-token timesteps (all ones in text-to-video: ``mask``)."""

    def __init__(self, latents=None, concat=None, first_frame=None, mask=None):
        self.latents, self.concat, self.first_frame = latents, concat, first_frame
        self.mask = first_frame if first_frame is not None else mask
        self.control = self.control_scale = None  # VACE: the control stream and its per-layer scale


def encode_prompt(model, prompt: str, tokens: int, warnings: list[str]):
    """WanPipeline._get_t5_prompt_embeds: cleaned prompt, attention mask, embeddings past the prompt zeroed."""
    import torch
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    tok, encoder = model.components["tokenizer"], model.components["text_encoder"]
    text = prompt_clean(prompt)
    inputs = tok([text], padding="max_length", max_length=tokens, truncation=True, add_special_tokens=True,
                 return_attention_mask=True, return_tensors="pt")
    full = tok([text], add_special_tokens=True).input_ids[0]
    if len(full) > tokens:
        warnings.append(f"prompt truncated to {tokens} tokens; dropped: {tok.decode(full[tokens - 1:-1])!r}")
    n = int(inputs.attention_mask.gt(0).sum())
    dev = encoder.device
    emb = encoder(inputs.input_ids.to(dev), inputs.attention_mask.to(dev)).last_hidden_state
    emb = emb.to(dtype=compute_dtype(encoder), device=model.plan.device)[0, :n]
    return torch.cat([emb, emb.new_zeros(tokens - n, emb.size(1))])[None]


def encode_prompts(model, request, ctx: RunContext, tokens: int, dtype):
    """The prompt's embeddings and, with classifier-free guidance, the negative prompt's (else None), in ``dtype``,
    through the prompt cache; the text encoder is freed afterwards as the memory plan says."""
    cfg = request.guidance_scale > 1.0
    c, memory = model.components, ctx.memory

    def texts():
        with resident(c["text_encoder"], model.plan.device, memory.offload):
            out = encode_prompt(model, request.prompt, tokens, ctx.warnings).to(dtype)
            return (out, encode_prompt(model, request.negative_prompt or "", tokens, []).to(dtype)) if cfg else out

    found = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt, tokens=tokens, dtype=str(dtype),
                                negative=(request.negative_prompt or "") if cfg else None)
    free_text_encoders(model, memory)
    return found if cfg else (found, None)


def encode_image(model, image):
    """WanImageToVideoPipeline.encode_image: the CLIP encoder's penultimate hidden states."""
    encoder = model.components["image_encoder"]
    inputs = model.components["image_processor"](images=image, return_tensors="pt")
    pixels = inputs["pixel_values"].to(encoder.device, encoder.dtype)
    return encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2].to(model.plan.device)


def latent_stats(vae, like=None, *, device=None, dtype=None):
    """(latents_mean, 1 / latents_std) shaped for (B, C, F, H, W) latents like ``like`` (or on ``device`` in
    ``dtype``)."""
    import torch

    if like is not None:
        device, dtype = like.device, like.dtype
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(device, dtype)
    return mean, 1.0 / torch.tensor(vae.config.latents_std).view(shape).to(device, dtype)


def encode_video(vae, frames):
    """WanVideoToVideoPipeline.prepare_latents: (F, H, W, 3) uint8 frames through the VAE encoder (the mode),
    normalised with the VAE's latent statistics: fp32 (1, z_dim, (F - 1) / 4 + 1, h, w) latents."""
    encoded = vae.encode(v2v.pixels(frames, vae.device, vae.dtype)).latent_dist.mode().float()
    mean, inv_std = latent_stats(vae, encoded)
    return (encoded - mean) * inv_std


def image_condition(vae, image, request, latents, expand: bool, last=None) -> Conditioning:
    """WanImageToVideoPipeline.prepare_latents: the image (first frame; for Wan 2.1 I2V followed by black
    frames, and ``last`` as the last frame when given) through the VAE encoder, normalised, with the mask of
    the given frames."""
    import torch
    from diffusers.video_processor import VideoProcessor

    spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
    n, (_, _, f, h, w) = request.num_frames, latents.shape
    processor = VideoProcessor(vae_scale_factor=spatial)

    def pixels_of(img):
        return processor.preprocess(img, height=request.height, width=request.width).to(
            latents.device, dtype=torch.float32).unsqueeze(2)

    pixels = pixels_of(image)
    if not expand:
        gap = n - 1 if last is None else n - 2
        pixels = torch.cat([pixels, pixels.new_zeros(1, pixels.shape[1], gap, request.height, request.width),
                            *([] if last is None else [pixels_of(last)])], dim=2)
    encoded = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
    mean, inv_std = latent_stats(vae, latents)
    encoded = (encoded.to(latents.device, latents.dtype) - mean) * inv_std
    if expand:
        first = torch.ones(1, 1, f, h, w, dtype=latents.dtype, device=latents.device)
        first[:, :, 0] = 0
        return Conditioning(latents=encoded, first_frame=first)
    mask = torch.ones(1, 1, n, h, w)
    mask[:, :, 1:] = 0
    if last is not None:
        mask[:, :, -1] = 1
    mask = torch.cat([torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=temporal), mask[:, :, 1:]], dim=2)
    mask = mask.view(1, -1, temporal, h, w).transpose(1, 2).to(encoded.device)
    return Conditioning(latents=encoded, concat=torch.cat([mask, encoded], dim=1))


def predict(expert, latents, t, cond: Conditioning, embeds, negative, image_embeds, guidance: float):
    """One step's guided prediction: conditional and unconditional passes run separately, as stock does."""
    import torch

    dtype = expert.dtype
    if cond.first_frame is not None:
        x = ((1 - cond.first_frame) * cond.latents + cond.first_frame * latents).to(dtype)
    elif cond.concat is not None:
        x = torch.cat([latents, cond.concat], dim=1).to(dtype)
    else:
        x = latents.to(dtype)
    if cond.mask is not None:  # expand_timesteps: one timestep per token, 0 on the given first frame
        p = expert.config.patch_size
        timestep = (cond.mask[0][0][:, :: p[1], :: p[2]] * t).flatten().unsqueeze(0).expand(latents.shape[0], -1)
    else:
        timestep = t.expand(latents.shape[0])
    kw = dict(hidden_states=x, timestep=timestep, encoder_hidden_states_image=image_embeds, return_dict=False)
    if cond.control is not None:
        kw.update(control_hidden_states=cond.control, control_hidden_states_scale=cond.control_scale)
    noise = expert(encoder_hidden_states=embeds, **kw)[0]
    if negative is None:
        return noise
    uncond = expert(encoder_hidden_states=negative, **kw)[0]
    return uncond + guidance * (noise - uncond)


def _segments(timesteps, start: int, boundary_t, experts: int):
    """[(expert index, step indices)] from ``start``: expert 0 while t >= boundary, then expert 1."""
    out: list[tuple[int, list[int]]] = []
    for i in range(start, len(timesteps)):
        e = 0 if boundary_t is None or experts < 2 or timesteps[i] >= boundary_t else 1
        if out and out[-1][0] == e:
            out[-1][1].append(i)
        else:
            out.append((e, [i]))
    return out


# -- folder facts ----------------------------------------------------------------------------------------

def _transformer_config(path: Path) -> dict[str, Any]:
    return config(path, "transformer") or config(path, "transformer_2")


def _text_tokens(path: Path, transformer: dict[str, Any]) -> int:
    """512, or the tokenizer's own smaller limit (not with 2.1 I2V: its image attention assumes 512)."""
    limit = config(path, "tokenizer", "tokenizer_config.json").get("model_max_length")
    if isinstance(limit, int) and 0 < limit < TEXT_TOKENS and transformer.get("added_kv_proj_dim") is None:
        return limit
    return TEXT_TOKENS
