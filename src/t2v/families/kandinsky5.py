"""Kandinsky 5.0 Video (``Kandinsky5T2VPipeline``): Qwen2.5-VL reads the prompt in a chat template (its last hidden
states, the system prompt's tokens cropped), CLIP gives a pooled embedding, a diffusion transformer (2B Lite, 19B
Pro) denoises channels-last latents beside an empty visual condition, and HunyuanVideo's VAE decodes.

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: the prompts encoded by the
stock pipeline's own encoder (with the pipeline's negative prompt when guidance is on and none is given), the
noise in the transformer's dtype from a CPU generator, the folder's flow-matching Euler schedule, the rotary
positions and resolution scale the stock call computes (and its sparse-attention parameters for NABLA models),
separate conditional and unconditional passes, then the VAE. Per-step progress and previews, cancel between
steps without decoding, and checkpoints that resume to the same frames.

Image-to-video (``Kandinsky5I2VPipeline`` folders): the image, resized to the request's size, through the VAE
encoder (a sample drawn from the request's generator after the noise) is the first latent frame, which the
scheduler never steps; the visual condition's mask marks it. After the loop the first four latent frames are
brought to the next frames' mean and spread, as the stock pipeline does against mesh artifacts (skipped for a
clip with no later frames to take them from, where the stock pipeline fails).

The tokenizer folder holds a ``Qwen2VLProcessor``; only its text tokenizer is used, so t2v loads that alone (the
processor's video half needs torchvision). LoRA: diffusers' ``KandinskyLoraLoaderMixin`` layout. Step caches:
none of diffusers' hooks knows this transformer's blocks yet, so a cache is refused by name.

Sparse attention (the 10 s models' NABLA): a flex ``BlockMask``, so those folders run with ``--attention flex``
(what ``auto`` resolves to for them; any other kernel is refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.families.common import GroupOffload, free_text_encoders
from t2v.families.dryrun import measured, meta_video, spatial_preview, text_peak
from t2v.families.lora import DiffusersLora
from t2v.models.catalog import config
from t2v.models.hub.kandinsky5 import CARD, I2V_PIPELINE, NEGATIVE
from t2v.planner.memory import meta_cost
from t2v.planner.precision import meta_kwargs
from t2v.sampling import promptcache
from t2v.sampling.accel import set_kernel
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.vae import video_uint8
from t2v.sampling.views import private_view

TEXT_TOKENS, CROP = 512, 128  # the stock call's max_sequence_length and the template's crop
MAX_LATENT_FRAMES = 128  # the transformer's rotary table per axis
NORMALIZED = 4  # the first latent frames image-to-video brings to the next frames' statistics


class Kandinsky5Family(GroupOffload, DiffusersLora):
    card = CARD
    components = (
        Component("tokenizer", ("Qwen2VLProcessor", "Qwen2Tokenizer", "Qwen2TokenizerFast"), module=False, prompt=True),
        Component("text_encoder", ("Qwen2_5_VLForConditionalGeneration",), weight_stem="model", prompt=True),
        Component("tokenizer_2", ("CLIPTokenizer", "CLIPTokenizerFast"), module=False, prompt=True),
        Component("text_encoder_2", ("CLIPTextModel",), weight_stem="model", prompt=True),
        Component("transformer", ("Kandinsky5Transformer3DModel",)),
        Component("vae", ("AutoencoderKLHunyuanVideo",)),
        Component("scheduler", ("FlowMatchEulerDiscreteScheduler",), module=False),
    )
    denoiser = "transformer"
    tiled_plans = ("low",)  # the VAE decodes in tiles under the low plan
    caches = ()  # no step-cache hook knows Kandinsky 5's blocks: refused by name
    lora_loader = "KandinskyLoraLoaderMixin"

    def rules(self, path: Path | None) -> Rules:
        vae, tr = (config(path, "vae"), config(path, "transformer")) if path is not None else ({}, {})
        spatial, temporal = int(vae.get("spatial_compression_ratio") or 8), int(vae.get("temporal_compression_ratio") or 4)
        patch = tr.get("patch_size") or (1, 2, 2)
        modes = ("i2v",) if path is not None and read_index(path).get("_class_name") == I2V_PIPELINE else ("video",)
        nabla = tr.get("attention_type") == "nabla"  # the 10 s models' sparse attention: a flex BlockMask
        return Rules(size_multiple=spatial * int(patch[1]), frame_step=temporal * int(patch[0]),
                     max_frames=(MAX_LATENT_FRAMES - 1) * temporal + 1, text_tokens=TEXT_TOKENS,
                     modes=modes if path is not None else self.modes, schedulers=("model",),
                     kernel="flex" if nabla else None, kernel_why="sparse (NABLA) attention" if nabla else "")

    def load_component(self, path: Path, component: Component, cls, plan, variant: str | None):
        """The ``Qwen2VLProcessor`` folder's text tokenizer alone (the prompt is all it reads)."""
        if component.name == "tokenizer":
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(path, subfolder="tokenizer")
        return super().load_component(path, component, cls, plan, variant)

    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch
        from diffusers import Kandinsky5T2VPipeline as Stock
        from diffusers.utils.torch_utils import randn_tensor
        from diffusers.video_processor import VideoProcessor

        c, memory, device = model.components, ctx.memory, model.plan.device
        transformer, vae = c["transformer"], c["vae"]
        dtype = transformer.dtype

        # 3. Encode the prompt (and the negative prompt when guidance is on).
        ctx.on_stage("encode_prompt")
        cfg = request.guidance_scale > 1.0
        negative = request.negative_prompt if request.negative_prompt is not None else NEGATIVE

        def texts():
            with resident(c["text_encoder"], device, memory.offload), resident(c["text_encoder_2"], device, memory.offload):
                out = encode(model, request.prompt, dtype, device, ctx.warnings)
                return out + encode(model, negative, dtype, device, []) if cfg else out

        embeds = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt, tokens=TEXT_TOKENS,
                                     negative=negative if cfg else None)
        free_text_encoders(model, memory, ("text_encoder", "text_encoder_2"))

        # 4. Timesteps, 5. the noise (channels last), the image's latent frame and the visual condition.
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        steps = request.num_inference_steps
        scheduler.set_timesteps(steps, device=device)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        s, t = vae.config.spatial_compression_ratio, vae.config.temporal_compression_ratio
        frames, h, w = (request.num_frames - 1) // t + 1, request.height // s, request.width // s
        channels = transformer.config.in_visual_dim
        state = LoopState(randn_tensor((1, frames, h, w, channels), generator=generator, device=torch.device(device),
                                       dtype=dtype))
        given = 0 if ctx.image is None else 1  # latent frames the image gives, never stepped
        if given:
            with resident(vae, device, memory.offload):
                state.latents[:, :1] = image_latents(vae, ctx.image, request, generator, dtype, device)
        condition = None
        if transformer.visual_cond:  # zeros, and the mask on the image's frame
            condition = torch.zeros((1, frames, h, w, channels + 1), dtype=dtype, device=device)
            condition[:, :given, :, :, -1] = 1
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)

        # 6. Rotary positions, 7. the resolution's scale, 8. sparse attention, as the stock call computes them.
        visual_pos = [torch.arange(frames, device=device), torch.arange(h // 2, device=device),
                      torch.arange(w // 2, device=device)]
        scale = Stock._get_scale_factor(None, request.height, request.width)
        sparse = sparse_params(transformer, state.latents if condition is None else
                               torch.cat([state.latents, condition], dim=-1), device)
        transformer = sparse_kernel(transformer, sparse, request, ctx)
        passes = [(embeds[0], embeds[1], torch.arange(int(embeds[2].diff().max()), device=device))]
        if cfg:
            passes.append((embeds[3], embeds[4], torch.arange(int(embeds[5].diff().max()), device=device)))

        # 9. Denoise: a conditional and (with guidance) an unconditional pass per step.
        ctx.on_stage("denoise", start, steps)

        def step(i: int, st: LoopState) -> None:
            ts = scheduler.timesteps[i]
            x = st.latents if condition is None else torch.cat([st.latents, condition], dim=-1)
            out = [transformer(hidden_states=x, encoder_hidden_states=text.to(dtype), pooled_projections=pooled.to(dtype),
                               timestep=ts.unsqueeze(0).to(dtype), visual_rope_pos=visual_pos, text_rope_pos=pos,
                               scale_factor=scale, sparse_params=sparse).sample  # return_dict=False gives no tuple
                   for text, pooled, pos in passes]
            velocity = out[0] if len(out) == 1 else out[1] + request.guidance_scale * (out[0] - out[1])
            st.latents[:, given:] = scheduler.step(velocity[:, given:], ts, st.latents[:, given:], return_dict=False)[0]

        with resident(transformer, device, memory.offload):
            denoise(ctx, steps, state, step, checkpoints, start=start)

        # 10. Image-to-video: the first latent frames to the next frames' statistics.
        if given and frames > NORMALIZED:
            state.latents = normalize_first_frames(state.latents)

        # 11. Decode (channels first, unscaled).
        ctx.on_stage("decode")
        if memory.name == "low":
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        with resident(vae, device, memory.offload):
            latents = state.latents.to(vae.dtype).permute(0, 4, 1, 2, 3) / vae.config.scaling_factor
            video = vae.decode(latents, return_dict=False)[0]
        return EngineRun(frames=video_uint8(VideoProcessor(vae_scale_factor=s), video), warnings=ctx.warnings,
                         resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return spatial_preview(model, latents.permute(0, 4, 1, 2, 3))

    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One Qwen encoding, one transformer pass (the conditions run one by one: batch 1), one decode."""
        import torch

        m, (f, h, w) = meta_video(path, frames, height, width)
        tr, vae = m["transformer"], m["vae"]
        meta = meta_kwargs()
        text = text_peak(m["text_encoder"], TEXT_TOKENS + CROP, output_hidden_states=True)
        channels = tr.config.in_visual_dim * (2 if tr.visual_cond else 1) + int(tr.visual_cond)
        x = torch.zeros(1, f, h, w, channels, **meta)
        pos = [torch.arange(n, device="meta") for n in (f, h // 2, w // 2)]
        step = meta_cost(lambda: tr(
            hidden_states=x, encoder_hidden_states=torch.zeros(1, TEXT_TOKENS, tr.config.in_text_dim, **meta),
            pooled_projections=torch.zeros(1, tr.config.in_text_dim2, **meta), timestep=torch.zeros(1, **meta),
            visual_rope_pos=pos, text_rope_pos=torch.arange(TEXT_TOKENS, device="meta"), scale_factor=(1, 2, 2),
            sparse_params=None, return_dict=False))
        z = torch.zeros(1, vae.config.latent_channels, f, h, w, **meta)
        decode = meta_cost(lambda: vae.decode(z), part="vae")
        return measured(m, acts={"text": text, "transformer": step.peak, "vae": decode.peak},
                        roles={"text": ["text_encoder", "text_encoder_2"], "denoise": ["transformer"], "vae": ["vae"]},
                        step=step, decode=decode, passes=batch, latents_bytes=z.numel() * 4 * 2, frames=frames,
                        height=height, width=width, vae_scales_with="clip")

    def reference_shape(self, path: Path) -> tuple[int, int]:
        return 2 * self.frames_per_latent(path) + 1, 2 * self.rules(Path(path)).size_multiple

    def frames_per_latent(self, path: Path) -> int:
        return int(config(Path(path), "vae").get("temporal_compression_ratio") or 4)


def encode(model, prompt: str, dtype, device, warnings: list[str]) -> tuple:
    """Kandinsky5T2VPipeline.encode_prompt for one prompt, by the stock pipeline's own code on the loaded text
    encoders: (Qwen embeddings, CLIP pooled embedding, cumulative lengths) with a warning when the prompt is cut
    to the encoder's tokens."""
    from diffusers import Kandinsky5T2VPipeline as Stock

    c = model.components
    pipe = Stock(transformer=None, vae=None, scheduler=None, text_encoder=c["text_encoder"], tokenizer=c["tokenizer"],
                 text_encoder_2=c["text_encoder_2"], tokenizer_2=c["tokenizer_2"])
    if len(c["tokenizer"](prompt).input_ids) > TEXT_TOKENS:
        warnings.append(f"prompt truncated to {TEXT_TOKENS} tokens")
    return tuple(pipe.encode_prompt(prompt, max_sequence_length=TEXT_TOKENS, device=device, dtype=dtype))


def image_latents(vae, image, request, generator, dtype, device):
    """Kandinsky5I2VPipeline's first latent frame: the image resized to the request, through the VAE encoder
    (a sample from ``generator``), scaled, channels last: (1, 1, h, w, C) in ``dtype``."""
    import torch
    from diffusers.video_processor import VideoProcessor

    processor = VideoProcessor(vae_scale_factor=vae.config.spatial_compression_ratio)
    pixels = processor.preprocess(image, height=request.height, width=request.width).to(device, dtype=dtype)
    with torch.no_grad():
        latents = vae.encode(pixels.unsqueeze(2)).latent_dist.sample(generator=generator)
    return (latents * vae.config.scaling_factor).permute(0, 2, 3, 4, 1).to(device=device, dtype=dtype)


def normalize_first_frames(latents):
    """Kandinsky5I2VPipeline.normalize_first_frame: the first latent frames to the next ones' mean and spread."""
    import types

    from diffusers import Kandinsky5I2VPipeline as Stock

    return Stock.normalize_first_frame(types.SimpleNamespace(
        adaptive_mean_std_normalization=Stock.adaptive_mean_std_normalization), latents)


def sparse_kernel(transformer, sparse, request, ctx: RunContext):
    """The transformer a NABLA model's run uses: its sparse attention is a flex ``BlockMask``, which only the
    flex kernel reads. Resolving a local folder already made ``auto`` flex (its rules); a model whose config
    was first read at load (a hub id downloaded by this run) gets a view with flex here, and says so."""
    attention = str(getattr(request, "attention", "auto") or "auto")
    if sparse is None or attention == "flex":
        return transformer
    if attention != "auto":
        raise InvalidRequest(f"attention: {request.model} runs sparse (NABLA) attention, which only the flex kernel "
                             f"takes; nearest valid: flex", field="attention")
    view = private_view(transformer)
    set_kernel(view, "flex")
    ctx.warnings.append("attention: ran with flex, the only kernel this model's sparse (NABLA) attention takes")
    return view


def sparse_params(transformer, latents, device):
    """The stock call's sparse-attention parameters (None for regular attention)."""
    import types

    from diffusers import Kandinsky5T2VPipeline as Stock

    return Stock.get_sparse_params(types.SimpleNamespace(transformer=transformer, fast_sta_nabla=Stock.fast_sta_nabla),
                                   latents, device)
