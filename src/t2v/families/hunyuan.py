"""HunyuanVideo (``HunyuanVideoPipeline``, ``HunyuanVideoImageToVideoPipeline``): Llama / Llava text encoder with
HunyuanVideo's prompt template, CLIP-L pooled text, the HunyuanVideo transformer and causal 3D VAE.

Prompts are encoded by the stock pipelines' own ``encode_prompt`` (the template, ``crop_start``, for I2V the
Llava image tokens, ``image_embed_interleave`` and the cropping around the assistant header), so the
embeddings are diffusers' bit for bit; the loop is t2v's, numbered like the stock ``__call__``: fp32 noise
from a CPU generator, the custom sigmas ``linspace(1, 0, steps + 1)[:-1]`` of FlowMatchEuler, the image
latents of I2V (``token_replace``: the first latent frame is the image's; ``latent_concat``: image latents and
a mask concatenated), then per-step progress and previews, cancel between steps without decoding and
checkpoints that resume to the same frames. The VAE decodes whole frames under the speed plan, as the stock
pipeline does by default, and in 256 px tiles under the balanced and low plans (``vae.enable_tiling()``, as
diffusers' HunyuanVideo examples run it: the same frames as the stock pipeline with tiling on). One deliberate
difference: a byte-level (Llama 3) tokenizer, as the hub repos have, is read as its tokenizer.json says, where
transformers 5's ``LlamaTokenizerFast`` (the class model_index.json names) would rebuild it wrongly.

Guidance, mapped onto t2v's fields:

* ``guidance_scale`` is HunyuanVideo's *embedded* guidance (the stock ``guidance_scale``): the distilled
  transformer takes it as an input (x1000), one pass per step. Official value 6.0. A folder whose transformer
  has no guidance embedding (HunyuanVideo-I2V-33ch) ignores it, as the stock pipeline does.
* ``guidance_scale_2`` is the stock ``true_cfg_scale``: above 1 a second, unconditional pass runs with
  ``negative_prompt`` (for I2V beside a black image, as the stock pipeline does) and the two are mixed;
  at its default 1.0 there is no true classifier-free guidance and ``negative_prompt`` is unused, exactly as
  the stock pipeline with ``true_cfg_scale=1``.

Licence: the Tencent Hunyuan Community License, which does not apply (grants nothing) in the European Union,
the United Kingdom and South Korea; see :data:`LICENSE_NOTICE`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from t2v.sampling import v2v
from t2v.sampling.base import EngineRun
from t2v.sampling.vae import video_uint8
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.families.common import GroupOffload, free_text_encoders
from t2v.families.lora import DiffusersLora
from t2v.families.dryrun import measured
from t2v.families.meta import meta_modules
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise, linear_preview
from t2v.models.spec import ModelSpec
from t2v.models.hub.hunyuan import CARD, I2V_PIPELINE, LICENSE, LICENSE_NOTICE  # noqa: F401  (named here too)
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs

logger = logging.getLogger(__name__)

TEXT_TOKENS = 256  # the pipelines' max_sequence_length (prompt tokens after the template)
CLIP_TOKENS = 77
# The HunyuanVideo latent -> RGB map (ComfyUI / the HunyuanVideo community's previewers): rows are latent channels.
_RGB_FACTORS = ((-0.0395, -0.0331, 0.0445), (0.0696, 0.0795, 0.0518), (0.0135, -0.0945, -0.0282), (0.0108, -0.0250, -0.0765),
                (-0.0209, 0.0032, 0.0224), (-0.0804, -0.0254, -0.0639), (-0.0991, 0.0271, -0.0669), (-0.0646, -0.0422, -0.0400),
                (-0.0696, -0.0595, -0.0894), (-0.0799, -0.0208, -0.0375), (0.1166, 0.1627, 0.0962), (0.1165, 0.0432, 0.0407),
                (-0.2315, -0.1920, -0.1355), (-0.0270, 0.0401, -0.0821), (-0.0616, -0.0997, -0.0727), (0.0249, -0.0469, -0.1703))
_RGB_BIAS = (0.0259, -0.0192, -0.0761)


class HunyuanFamily(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    card = CARD
    components = (
        Component("tokenizer", ("LlamaTokenizerFast", "LlamaTokenizer", "PreTrainedTokenizerFast"), module=False),
        Component("text_encoder", ("LlamaModel", "LlavaForConditionalGeneration"), weight_stem="model"),
        Component("tokenizer_2", ("CLIPTokenizer", "CLIPTokenizerFast"), module=False),
        Component("text_encoder_2", ("CLIPTextModel",), weight_stem="model"),
        Component("transformer", ("HunyuanVideoTransformer3DModel",)),
        Component("vae", ("AutoencoderKLHunyuanVideo",)),
        Component("scheduler", ("FlowMatchEulerDiscreteScheduler",), module=False),
        Component("image_processor", ("CLIPImageProcessor", "CLIPImageProcessorFast"), module=False, required=False),
    )
    denoiser = "transformer"
    caches = ("fbc", "taylorseer", "magcache", "pab", "fastercache")  # t2v.sampling.stepcache
    lora_loader = "HunyuanVideoLoraLoaderMixin"  # diffusers, original HunyuanVideo and musubi key layouts

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        if path is None:
            return Rules(size_multiple=16, frame_step=4, text_tokens=TEXT_TOKENS, modes=self.modes, schedulers=("model",))
        vae, tr = config(path, "vae"), config(path, "transformer")
        modes = ("i2v",) if read_index(path).get("_class_name") == I2V_PIPELINE else ("video",)
        return Rules(size_multiple=(vae.get("spatial_compression_ratio") or 8) * (tr.get("patch_size") or 2),
                     frame_step=vae.get("temporal_compression_ratio") or 4, text_tokens=TEXT_TOKENS, modes=modes,
                     schedulers=("model",))

    def check_index(self, path: Path, index: dict[str, Any]) -> None:
        super().check_index(path, index)
        if index.get("_class_name") == I2V_PIPELINE and not (path / "image_processor").is_dir():
            raise ModelUnavailable(f"{path} is not a complete {self.name} image-to-video model: missing image_processor")

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import numpy as np
        import torch

        c, memory, device = model.components, ctx.memory, model.plan.device
        i2v = ctx.image is not None
        if ("i2v" if i2v else "video") not in self.rules(Path(model.source.path)).modes:
            raise InvalidRequest("image: this model makes videos from an image: pass one" if not i2v else
                                 "image: this model cannot start from an image", field="image")
        tr, vae = c["transformer"], c["vae"]
        dtype, condition = tr.dtype, tr.config.image_condition_type if i2v else None
        true_cfg = (request.guidance_scale_2 or 1.0) > 1.0

        # 1. Encode the prompt (and the negative one for true CFG) with the stock encode_prompt.
        ctx.on_stage("encode_prompt")
        pipe = stock_pipeline(c, i2v)
        with resident(c["text_encoder"], device, memory.offload), resident(c["text_encoder_2"], device, memory.offload):
            check_length(c, request.prompt, i2v, ctx.warnings)
            kw = dict(device=device, max_sequence_length=TEXT_TOKENS)
            if i2v:  # the stock default: 2 for latent_concat, 4 for token_replace (its negative pass keeps 2)
                interleave = {"latent_concat": 2, "token_replace": 4}.get(condition, 1)
                embeds = pipe.encode_prompt(image=ctx.image, prompt=request.prompt, image_embed_interleave=interleave, **kw)
                negative = (pipe.encode_prompt(image=black(request), prompt=request.negative_prompt or "", **kw)
                            if true_cfg else None)
            else:
                embeds = pipe.encode_prompt(prompt=request.prompt, **kw)
                negative = pipe.encode_prompt(prompt=request.negative_prompt or "", **kw) if true_cfg else None
        del pipe  # holds the text encoders, which the low plan frees next
        embeds = [t.to(dtype) for t in embeds]  # (prompt embeds, pooled, attention mask), as stock
        negative = [t.to(dtype) for t in negative] if negative is not None else None
        free_text_encoders(model, memory, ("text_encoder", "text_encoder_2"))

        # 2. Timesteps (the stock custom sigmas) and fp32 noise from a CPU generator; for I2V the image latents.
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, request.num_inference_steps + 1)[:-1], device=device)
        timesteps = scheduler.timesteps
        spatial, temporal = vae.config.spatial_compression_ratio, vae.config.temporal_compression_ratio
        frames_latent = (request.num_frames - 1) // temporal + 1
        channels = (tr.config.in_channels - 1) // 2 if condition == "latent_concat" else tr.config.in_channels
        shape = (1, channels, frames_latent, request.height // spatial, request.width // spatial)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        image_latents = mask = None
        if i2v:
            with resident(vae, device, memory.offload):
                image_latents = encode_image(vae, ctx.image, request, device)
            latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
            t = torch.tensor([0.999]).to(device=device)
            latents = latents * t + image_latents.repeat(1, 1, frames_latent, 1, 1) * (1 - t)
            if condition == "latent_concat":
                image_latents = torch.cat([image_latents, image_latents.new_zeros(shape)[:, :, 1:]], dim=2)
                mask = image_latents.new_ones(1, 1, *shape[2:])
                mask[:, :, 1:] = 0
        elif ctx.video is not None:  # video-to-video: the input's latents noised to the strength's timestep
            timesteps = v2v.strength_timesteps(scheduler, request.num_inference_steps, request.strength)
            with resident(vae, device, memory.offload):
                latents = v2v.noised(scheduler, encode_video(vae, ctx.video.frames, device), timesteps, generator)
        else:
            latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
            scheduler.set_begin_index(0)  # HunyuanVideoPipeline does; the I2V pipeline does not
        guidance = None
        if not i2v or tr.config.guidance_embeds:
            guidance = torch.tensor([request.guidance_scale], dtype=dtype, device=device) * 1000.0

        state = LoopState(latents)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)

        # 3. Denoise: the conditional pass, the unconditional one with true CFG, a scheduler step.
        def predict(x, t, cond):
            prompt_embeds, pooled, attention = cond
            return tr(hidden_states=x, timestep=t.expand(1).to(torch.float32), encoder_hidden_states=prompt_embeds,
                      encoder_attention_mask=attention, pooled_projections=pooled, guidance=guidance, return_dict=False)[0]

        def step(i: int, s: LoopState) -> None:
            t = timesteps[i]
            if condition == "token_replace":
                x = torch.cat([image_latents, s.latents[:, :, 1:]], dim=2)
            elif condition == "latent_concat":
                x = torch.cat([s.latents, image_latents, mask], dim=1)
            else:
                x = s.latents
            noise = predict(x.to(dtype), t, embeds)
            if negative is not None:
                uncond = predict(x.to(dtype), t, negative)
                noise = uncond + request.guidance_scale_2 * (noise - uncond)
            if condition == "token_replace":  # the image's frame stays as it is
                s.latents = torch.cat([image_latents, scheduler.step(noise[:, :, 1:], t, s.latents[:, :, 1:],
                                                                     return_dict=False)[0]], dim=2)
            else:
                s.latents = scheduler.step(noise, t, s.latents, return_dict=False)[0]

        ctx.on_stage("denoise", start, len(timesteps))
        with resident(tr, device, memory.offload):
            denoise(ctx, len(timesteps), state, step, checkpoints, start=start)

        # 4. Decode: whole frames under the speed plan, as stock; in 256 px tiles under the others (the VAE's
        # mid-block attention grows with the square of the frame area). latent_concat drops 4 frames, as stock.
        ctx.on_stage("decode")
        if memory.name != "speed":
            vae.enable_tiling()
        else:
            vae.disable_tiling()
        with resident(vae, device, memory.offload):
            video = vae.decode(state.latents.to(vae.device, vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        if condition == "latent_concat":
            video = video[:, :, 4:]
        from diffusers.video_processor import VideoProcessor

        frames = video_uint8(VideoProcessor(vae_scale_factor=spatial), video)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        """HunyuanVideo's linear latent -> RGB map (ComfyUI's) for 16-channel latents (the first three channels,
        scaled, for other widths), middle frame, upscaled by the VAE's spatial factor."""
        return linear_preview(latents, _RGB_FACTORS, _RGB_BIAS, model.components["vae"].config.spatial_compression_ratio)

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """The text encoders (the Llama over template + prompt, for I2V + 575 image tokens, and its vision
        tower), one transformer pass (true CFG runs a second pass after it, separately: the same peak, twice
        the FLOPs; ``batch`` is :meth:`guidance_passes`) and one decode. The VAE
        decodes 16 frames (4 latent frames + 1) at a time whatever the clip's length, so its peak grows with
        the frame's area (``vae_scales_with``: "area"), measured at 17 frames (see :meth:`reference_shape`).
        Scaled to 720p that is about 2/3 of an untiled decode's peak (its mid-block attention mask grows with
        the square of the area) and 10x a tiled one's (the balanced and low plans tile)."""
        import torch

        path = Path(path)
        m = cast(meta_modules(str(path)))
        tr, vae, te = m["transformer"], m["vae"], m["text_encoder"]
        meta = meta_kwargs()
        spatial, temporal = vae.config.spatial_compression_ratio, vae.config.temporal_compression_ratio
        f, h, w = (frames - 1) // temporal + 1, height // spatial, width // spatial
        i2v = read_index(path).get("_class_name") == I2V_PIPELINE
        crop = 103 if i2v else 95  # the templates' crop_start
        image_tokens = 0
        if i2v:  # Llava: the language model over the expanded ids, the vision tower on its own
            vision_cfg = te.config.vision_config
            image_tokens = (vision_cfg.image_size // vision_cfg.patch_size) ** 2
            pixels = torch.zeros(1, 3, vision_cfg.image_size, vision_cfg.image_size, **meta)
            text_peak = meta_cost(lambda: te.model.vision_tower(pixels, output_hidden_states=True),
                                  part="text").peak
            language = te.model.language_model
        else:
            text_peak, language = 0, te
        ids = torch.zeros(1, TEXT_TOKENS + crop + max(image_tokens - 1, 0), dtype=torch.long, device="meta")
        text_peak = max(text_peak, meta_cost(lambda: language(input_ids=ids, output_hidden_states=True),
                                             part="text").peak)
        clip_ids = torch.zeros(1, CLIP_TOKENS, dtype=torch.long, device="meta")
        text_peak = max(text_peak, meta_cost(lambda: m["text_encoder_2"](clip_ids), part="text").peak)
        condition = tr.config.image_condition_type
        interleave = {"latent_concat": 2, "token_replace": 4}.get(condition, 1)
        # After the crop: 256 prompt tokens (I2V: 252, the assistant header cut out, + the interleaved image).
        length = TEXT_TOKENS - 4 + -(-image_tokens // interleave) if i2v else TEXT_TOKENS
        x = torch.zeros(1, tr.config.in_channels, f, h, w, **meta)
        embeds = torch.zeros(1, length, tr.config.text_embed_dim, **meta)
        mask = torch.ones(1, length, **meta)
        pooled = torch.zeros(1, tr.config.pooled_projection_dim, **meta)
        one = torch.ones(1, **meta)
        step = meta_cost(lambda: tr(hidden_states=x, timestep=one, encoder_hidden_states=embeds,
                                                     encoder_attention_mask=mask, pooled_projections=pooled,
                                                     guidance=one if tr.config.guidance_embeds else None,
                                                     return_dict=False))
        z_channels = vae.config.latent_channels
        latent_bytes = z_channels * f * h * w * 4
        z = torch.zeros(1, z_channels, f, h, w, **meta)
        decode = meta_cost(lambda: vae.decode(z), part="vae")
        vae_peak = decode.peak
        if i2v:
            image = torch.zeros(1, 3, 1, height, width, **meta)
            vae_peak = max(vae_peak, meta_cost(lambda: vae.encode(image), part="vae").peak)
        return measured(m, acts={"text": text_peak, "transformer": step.peak, "vae": vae_peak},
                        roles={"text": ["text_encoder", "text_encoder_2"], "denoise": ["transformer"], "vae": ["vae"]},
                        step=step, decode=decode, passes=batch,
                        latents_bytes=latent_bytes + tr.config.in_channels * f * h * w * 4,  # latents + the model's input
                        frames=frames, height=height, width=width, vae_scales_with="area")

    def guidance_passes(self, request) -> int:
        """Embedded guidance costs no pass; true CFG (``guidance_scale_2`` > 1) a second one."""
        return 2 if (request.guidance_scale_2 or 1.0) > 1.0 else 1

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """17 frames (5 latent frames: one full 16-frame VAE decode tile) at 256 px (one spatial VAE tile, and
        enough video tokens that the 256 text tokens do not dominate the transformer's activations)."""
        m = self.rules(Path(path)).size_multiple
        return 17, -(-256 // m) * m

    def frames_per_latent(self, path: Path) -> int:
        return config(Path(path), "vae").get("temporal_compression_ratio") or 4


# -- steps of the run ------------------------------------------------------------------------------------


def stock_pipeline(components: dict[str, Any], i2v: bool):
    """The stock pipeline object over the loaded components (nothing copied), for its ``encode_prompt``."""
    from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoPipeline

    names = ["text_encoder", "tokenizer", "transformer", "vae", "scheduler", "text_encoder_2", "tokenizer_2"]
    cls = HunyuanVideoImageToVideoPipeline if i2v else HunyuanVideoPipeline
    return cls(**{n: components[n] for n in names + (["image_processor"] if i2v else [])})


def check_length(components: dict[str, Any], prompt: str, i2v: bool, warnings: list[str]) -> None:
    """Warn when the Llama (256 tokens after the template) or CLIP (77) encoder does not see the whole prompt."""
    from diffusers.pipelines.hunyuan_video import pipeline_hunyuan_video as t2v_module
    from diffusers.pipelines.hunyuan_video import pipeline_hunyuan_video_image2video as i2v_module

    template = (i2v_module if i2v else t2v_module).DEFAULT_PROMPT_TEMPLATE
    tok, clip = components["tokenizer"], components["tokenizer_2"]
    ids = tok(template["template"].format(prompt)).input_ids
    suffix = len(tok(template["template"].format("")).input_ids) - template["crop_start"]
    if len(ids) > TEXT_TOKENS + template["crop_start"]:
        kept = tok.decode(ids[template["crop_start"]: len(ids) - suffix][TEXT_TOKENS:], skip_special_tokens=True)
        warnings.append(f"prompt truncated to {TEXT_TOKENS} tokens for the Llama text encoder; dropped: {kept!r}")
    clip_ids = clip(prompt).input_ids
    if len(clip_ids) > CLIP_TOKENS:
        warnings.append(f"the CLIP text encoder sees the first {CLIP_TOKENS} tokens of the prompt; dropped: "
                        f"{clip.decode(clip_ids[CLIP_TOKENS - 1:-1])!r}")


def black(request):
    """The stock I2V pipeline's negative image for true CFG."""
    from PIL import Image

    return Image.new("RGB", (request.width, request.height), 0)


def encode_video(vae, frames, device):
    """(F, H, W, 3) uint8 frames through the VAE encoder (its mode), scaled: (1, C, (F - 1) / 4 + 1, h, w) float32,
    the latents decode divides by the scaling factor again."""
    import torch

    encoded = vae.encode(v2v.pixels(frames, vae.device, vae.dtype)).latent_dist.mode()
    return encoded.to(device, torch.float32) * vae.config.scaling_factor


def encode_image(vae, image, request, device):
    """HunyuanVideoImageToVideoPipeline.prepare_latents: the image as one frame through the VAE encoder (its
    mode), scaled: (1, C, 1, h, w) float32."""
    import torch
    from diffusers.video_processor import VideoProcessor

    pixels = VideoProcessor(vae_scale_factor=vae.config.spatial_compression_ratio).preprocess(
        image, request.height, request.width).to(device, vae.dtype)
    encoded = vae.encode(pixels.unsqueeze(2).to(vae.device)).latent_dist.mode()
    return encoded.to(device, torch.float32) * vae.config.scaling_factor
