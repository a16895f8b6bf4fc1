"""HunyuanVideo 1.5 (``HunyuanVideo15Pipeline``): Qwen2.5-VL encodes the prompt in a chat template (the hidden
states two layers from the end, the system prompt's tokens cropped), a ByT5 glyph encoder encodes the text in
quotes (so ``a sign saying "open"`` spells it), the 8.3B transformer denoises the latents beside an image
condition's latents and mask (zeros for text-to-video), and a 16x / 4x VAE decodes.

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: the prompts as stock encodes
them, the noise in the transformer's dtype from a CPU generator, the sigmas ``linspace(1, 0, steps + 1)[:-1]``,
and classifier-free guidance through the folder's own ``guider`` (``ClassifierFreeGuidance``, its rescale and
step range included) with the request's ``guidance_scale`` as its scale: separate conditional and
unconditional passes, as the guider runs them. Per-step progress and previews, cancel between steps without
decoding, and checkpoints that resume to the same frames.

LoRA: diffusers has no LoRA loader mixin for this pipeline, so t2v loads diffusers-layout (PEFT) LoRA files into
the transformer with its own ``load_lora_adapter``, as many as asked, each under its own name and strength (stock
``pipe.transformer.load_lora_adapter`` and ``set_adapters``); a file in another layout (the original repository's
key names) is refused naming the layers that do not fit.

Image-to-video (``HunyuanVideo15ImageToVideoPipeline`` folders, with a SigLIP image encoder): the image, cropped
to the request's size, gives the image tokens (its SigLIP hidden states) and the first latent frame of the
condition beside its mask, as the stock pipeline does. The stock pipeline picks the size from the image and the
model's target size; t2v takes the request's (the same frames where they agree).

Not run: the super-resolution stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.families.common import GroupOffload, free_text_encoders
from t2v.families.lora import DiffusersLora
from t2v.families.dryrun import measured, meta_video, spatial_preview, text_peak
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.models.hub.hunyuan15 import CARD, I2V_PIPELINE
from t2v.planner.memory import meta_cost
from t2v.planner.precision import meta_kwargs
from t2v.sampling import promptcache
from t2v.sampling.base import EngineRun
from t2v.sampling.vae import video_uint8
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler

TEXT_TOKENS, GLYPH_TOKENS, CROP = 1000, 256, 108  # the pipeline's tokenizer lengths and template crop
SEMANTIC_TOKENS = 729  # the image-embedding tokens text-to-video passes as zeros


class HunyuanVideo15Family(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    tiled_plans = ("low",)  # the VAE decodes in 256 px tiles, every frame of a tile at once
    card = CARD
    components = (
        Component("tokenizer", ("Qwen2Tokenizer", "Qwen2TokenizerFast"), module=False, prompt=True),
        Component("text_encoder", ("Qwen2_5_VLTextModel",), weight_stem="model", prompt=True),
        Component("tokenizer_2", ("ByT5Tokenizer",), module=False, prompt=True),
        Component("text_encoder_2", ("T5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("HunyuanVideo15Transformer3DModel",)),
        Component("vae", ("AutoencoderKLHunyuanVideo15",)),
        Component("scheduler", ("FlowMatchEulerDiscreteScheduler",), module=False),
        Component("guider", ("ClassifierFreeGuidance",), module=False),
        Component("image_encoder", ("SiglipVisionModel",), weight_stem="model", required=False),
        Component("feature_extractor", ("SiglipImageProcessor", "SiglipImageProcessorFast"), module=False,
                  required=False),
    )
    denoiser = "transformer"
    caches = ("fbc", "taylorseer", "magcache", "pab", "fastercache")  # t2v.sampling.stepcache (block registered)
    lora_loader = ""  # no loader mixin in diffusers: the PEFT layout, read as it is

    def rules(self, path: Path | None) -> Rules:
        if path is None:
            return Rules(size_multiple=16, frame_step=4, text_tokens=TEXT_TOKENS, modes=self.modes, schedulers=("model",))
        vae, tr = config(path, "vae"), config(path, "transformer")
        modes = ("i2v",) if read_index(path).get("_class_name") == I2V_PIPELINE else ("video",)
        return Rules(size_multiple=int(vae.get("spatial_compression_ratio") or 16) * (tr.get("patch_size") or 1),
                     frame_step=int(vae.get("temporal_compression_ratio") or 4) * (tr.get("patch_size_t") or 1),
                     text_tokens=TEXT_TOKENS, modes=modes, schedulers=("model",))

    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import numpy as np
        import torch
        from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor
        from diffusers.utils.torch_utils import randn_tensor

        c, memory, device = model.components, ctx.memory, model.plan.device
        transformer, vae = c["transformer"], c["vae"]
        guider = c["guider"].new(guidance_scale=request.guidance_scale)
        dtype = transformer.dtype

        # 3. Encode the prompt (and the negative prompt when the guider runs an unconditional pass).
        ctx.on_stage("encode_prompt")
        cfg = guider.num_conditions > 1  # guidance on (a scale of 1, or a disabled guider: one pass)

        def texts():
            with resident(c["text_encoder"], device, memory.offload), resident(c["text_encoder_2"], device, memory.offload):
                out = encode(model, request.prompt, dtype, device, ctx.warnings)
                if cfg:
                    out = out + encode(model, request.negative_prompt or "", dtype, device, [])
                return out

        embeds = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt, tokens=TEXT_TOKENS,
                                     negative=(request.negative_prompt or "") if cfg else None)
        free_text_encoders(model, memory, ("text_encoder", "text_encoder_2"))

        # 4. Timesteps, 5. the noise in the transformer's dtype and the empty image condition.
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        steps = request.num_inference_steps
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1], device=device)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        s, t = vae.spatial_compression_ratio, vae.temporal_compression_ratio
        shape = (1, vae.config.latent_channels, (request.num_frames - 1) // t + 1, request.height // s, request.width // s)
        state = LoopState(randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype))
        if ctx.image is None:  # text-to-video: an empty image condition
            condition = torch.zeros((1, shape[1] + 1, *shape[2:]), dtype=dtype, device=device)
            image_embeds = torch.zeros(1, SEMANTIC_TOKENS, transformer.config.image_embed_dim, dtype=dtype, device=device)
        else:
            with resident(c["image_encoder"], device, memory.offload), resident(vae, device, memory.offload):
                condition, image_embeds = image_condition(model, ctx.image, request, shape, dtype, device)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        names = ("encoder_hidden_states", "encoder_attention_mask", "encoder_hidden_states_2", "encoder_attention_mask_2")
        inputs = {n: (embeds[i], embeds[i + 4] if cfg else None) for i, n in enumerate(names)}

        # 7. Denoise: one pass per guider condition, combined by the guider.
        ctx.on_stage("denoise", start, steps)

        def step(i: int, st: LoopState) -> None:
            ts = scheduler.timesteps[i]
            x = torch.cat([st.latents, condition], dim=1)
            guider.set_state(step=i, num_inference_steps=steps, timestep=ts)
            batches = guider.prepare_inputs(inputs)
            for batch in batches:
                guider.prepare_models(transformer)
                kwargs = {n: getattr(batch, n) for n in names}
                batch.noise_pred = transformer(hidden_states=x, image_embeds=image_embeds, timestep=ts.expand(1).to(x.dtype),
                                               return_dict=False, **kwargs)[0]
                guider.cleanup_models(transformer)
            st.latents = scheduler.step(guider(batches)[0], ts, st.latents, return_dict=False)[0]

        with resident(transformer, device, memory.offload):
            denoise(ctx, steps, state, step, checkpoints, start=start)

        # 8. Decode.
        ctx.on_stage("decode")
        if memory.name == "low":
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        with resident(vae, device, memory.offload):
            video = vae.decode(state.latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        frames = video_uint8(HunyuanVideo15ImageProcessor(vae_scale_factor=s), video)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return spatial_preview(model, latents)

    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One Qwen encoding, one transformer pass (the guider runs the conditions one by one: batch 1), one decode."""
        import torch

        m, (f, h, w) = meta_video(path, frames, height, width)
        tr, vae = m["transformer"], m["vae"]
        meta = meta_kwargs()
        text = text_peak(m["text_encoder"], TEXT_TOKENS + CROP, output_hidden_states=True)
        x = torch.zeros(1, tr.config.in_channels, f, h, w, **meta)
        step = meta_cost(lambda: text_to_video(lambda: tr(
            hidden_states=x, timestep=torch.zeros(1, **meta),
            encoder_hidden_states=torch.zeros(1, TEXT_TOKENS, tr.config.text_embed_dim, **meta),
            encoder_attention_mask=torch.ones(1, TEXT_TOKENS, **meta),
            encoder_hidden_states_2=torch.zeros(1, GLYPH_TOKENS, tr.config.text_embed_2_dim, **meta),
            encoder_attention_mask_2=torch.ones(1, GLYPH_TOKENS, **meta),
            image_embeds=torch.zeros(1, SEMANTIC_TOKENS, tr.config.image_embed_dim, **meta), return_dict=False)))
        z = torch.zeros(1, vae.config.latent_channels, f, h, w, **meta)
        if vae_chunk == 1:  # the low plan's tiled decode (the reference shape is one tile: untiled either way)
            vae.enable_tiling()
        try:
            decode = meta_cost(lambda: frame_masks(lambda: vae.decode(z)), part="vae")
        finally:
            vae.disable_tiling()
        side = vae.tile_latent_min_height
        tile = meta_cost(lambda: frame_masks(lambda: vae.decode(torch.zeros(1, vae.config.latent_channels, f, side,
                                                                            side, **meta))), part="vae").peak
        return measured(m, acts={"text": text, "transformer": step.peak, "vae": decode.peak},
                        roles={"text": ["text_encoder", "text_encoder_2"], "denoise": ["transformer"], "vae": ["vae"]},
                        step=step, decode=decode, passes=batch, latents_bytes=z.numel() * 4 * 2, frames=frames,
                        height=height, width=width, vae_scales_with="clip",
                        vae_tile={"acts": tile, "side": side * vae.spatial_compression_ratio})  # one tile, alone

    def reference_shape(self, path: Path) -> tuple[int, int]:
        return 2 * self.frames_per_latent(path) + 1, 2 * self.rules(Path(path)).size_multiple

    def frames_per_latent(self, path: Path) -> int:
        return int(config(Path(path), "vae").get("temporal_compression_ratio") or 4)


def image_condition(model, image, request, shape, dtype, device):
    """HunyuanVideo15ImageToVideoPipeline's image inputs: the image cropped to the request's size, its SigLIP
    hidden states for the image tokens, and its latents on the first latent frame (zeros after) with the mask
    (1 on that frame) concatenated: ((1, C + 1, F, h, w), (1, tokens, dim)) in ``dtype``."""
    import torch
    from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import (
        HunyuanVideo15ImageToVideoPipeline as Stock)

    c, vae = model.components, model.components["vae"]
    processor = HunyuanVideo15ImageProcessor(vae_scale_factor=vae.spatial_compression_ratio, do_resize=False,
                                             do_convert_rgb=True)
    image = processor.resize(image, height=request.height, width=request.width, resize_mode="crop")
    embeds = Stock._get_image_embeds(c["image_encoder"], c["feature_extractor"], image, device).to(device, dtype)
    latents = Stock._get_image_latents(vae, processor, image, request.height, request.width, device)
    condition = latents.repeat(1, 1, shape[2], 1, 1)
    condition[:, :, 1:] = 0
    mask = torch.zeros((1, 1, *shape[2:]), dtype=dtype, device=device)
    mask[:, :, 0] = 1.0
    return torch.cat([condition.to(device=device, dtype=dtype), mask], dim=1), embeds


def encode(model, prompt: str, dtype, device, warnings: list[str]) -> tuple:
    """HunyuanVideo15Pipeline.encode_prompt for one prompt: (Qwen embeddings, mask, glyph embeddings, mask) in
    ``dtype``, with a warning when the prompt is cut to the encoder's tokens."""
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import HunyuanVideo15Pipeline as Stock

    c = model.components
    embeds, mask = Stock._get_mllm_prompt_embeds(c["text_encoder"], c["tokenizer"], [prompt], device, TEXT_TOKENS,
                                                 crop_start=CROP)
    glyph, glyph_mask = Stock._get_byt5_prompt_embeds(c["tokenizer_2"], c["text_encoder_2"], [prompt], device, GLYPH_TOKENS)
    if len(c["tokenizer"](prompt).input_ids) > TEXT_TOKENS:
        warnings.append(f"prompt truncated to {TEXT_TOKENS} tokens")
    return tuple(x.to(dtype=dtype, device=device) for x in (embeds, mask, glyph, glyph_mask))


def causal_mask_by_frame(n_frame: int, n_hw: int, dtype, device, batch_size: int | None = None):
    """HunyuanVideo15AttnBlock.prepare_causal_attention_mask, the same mask made the same way (one full tensor,
    then zeros written into it), a frame's rows at a time where the original writes one row at a time (a Python
    loop over every latent position: most of a dry run's decode)."""
    import torch

    mask = torch.full((n_frame * n_hw, n_frame * n_hw), float("-inf"), dtype=dtype, device=device)
    for i in range(n_frame):
        mask[i * n_hw:(i + 1) * n_hw, :(i + 1) * n_hw] = 0
    return mask if batch_size is None else mask.unsqueeze(0).expand(batch_size, -1, -1)


def frame_masks(call):
    """``call()`` with the VAE's attention blocks making their causal masks by frame (:func:`causal_mask_by_frame`)."""
    from unittest import mock

    from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15AttnBlock

    with mock.patch.object(HunyuanVideo15AttnBlock, "prepare_causal_attention_mask",
                           staticmethod(causal_mask_by_frame)):
        return call()


class _MetaAll:
    """``torch`` for the transformer's module during a meta-device dry run: ``torch.all`` of a meta tensor (the
    transformer asks whether the image embeddings are all zero) answers True, the text-to-video case t2v runs;
    everything else is torch's."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def all(self, x, *args, **kwargs):
        return True if x.device.type == "meta" else self._torch.all(x, *args, **kwargs)


def text_to_video(call):
    """``call()`` with the transformer module's ``torch.all`` answering meta tensors (see :class:`_MetaAll`) and
    ``nonzero`` of a meta attention mask taken as all ones (every text token present: the costliest case)."""
    from unittest import mock

    import torch
    import torch.fx.experimental._config as fx_config
    from diffusers.models.transformers import transformer_hunyuan_video15 as module

    with mock.patch.object(module, "torch", _MetaAll(torch)), fx_config.patch(meta_nonzero_assume_all_nonzero=True):
        return call()
