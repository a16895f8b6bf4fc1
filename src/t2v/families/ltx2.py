"""LTX-2 (``LTX2Pipeline``): a clip and its sound from one prompt. Gemma 3 encodes the prompt (every layer's hidden
states), the text connectors turn that into the video and the audio stream's prompt, one transformer denoises
both streams together (each attends to the other), the LTX-2 video VAE decodes the frames and the audio VAE
plus the vocoder decode the sound.

t2v's own loop, step for step ``LTX2Pipeline.__call__``, so a seed gives the stock pipeline's frames and sound:
the video noise and then the audio noise from the request's generator, the linear sigmas shifted by the video's
token count (two schedulers, one per stream), and each step's guidance in the x0 form: classifier-free guidance
(the sound with its own scale, ``audio_guidance_scale``), spatio-temporal guidance (a pass with the self-attention
of ``stg_blocks`` perturbed) and modality-isolation guidance (a pass without the streams' cross-attention), then
the guidance rescale. The sound goes to :class:`~t2v.sampling.base.EngineRun` ``audio``, and from there into the
files and the record. Checkpoints hold both streams' latents, so a resumed run gives the same frames and sound.

With an image (``--image``) the same folder runs as ``LTX2ImageToVideoPipeline``: the image, re-compressed as one
H.264 frame at the model's CRF (33 for Gemma 3 models) as it was trained, becomes the first latent frame, whose
tokens get timestep 0 and are never stepped.

With a first and a last image it runs as ``LTX2ConditionPipeline`` with those two conditions, and with a
``control_video`` as ``LTX2InContextPipeline`` with it as an IC-LoRA's reference (:mod:`t2v.families.ltx2_condition`);
``latent_upscale`` runs the two-stage path (:mod:`t2v.families.ltx2_upscale`).

Not run: other conditions (other frames, strengths, videos), a reference's attention strength or mask, prompt
enhancement, the duration head of later checkpoints (a request always names its frame count) and Gemma 4 text
encoders.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import Component, RunContext, Rules
from t2v.families.common import GroupOffload, free_text_encoders, scheduler_min_steps
from t2v.families.lora import DiffusersLora, lora_files
from t2v.families.dryrun import measured, meta_video, spatial_preview
from t2v.models.catalog import config
from t2v.models.registry import folder_info
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.families import ltx2_upscale as upscale
from t2v.families.ltx_steps import Grid, decode_plan
from t2v.families.ltx2_condition import check_reference_size, conditioned, reference_downscale
from t2v.families.ltx2_steps import (
    OPTIONS, AudioGrid, Guidance, Text, audio_noise, connect, decode_audio, decode_video, gemma_embeds, image_latents,
    noise, step_fn, timesteps)
from t2v.models.hub.ltx2 import CARD
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.sampling import promptcache
from t2v.sampling.base import EngineRun
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler


class LTX2Family(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    card = CARD
    components = (
        Component("tokenizer", ("GemmaTokenizer", "GemmaTokenizerFast"), module=False, prompt=True),
        Component("text_encoder", ("Gemma3ForConditionalGeneration",), weight_stem="model", prompt=True),
        Component("connectors", ("LTX2TextConnectors",), prompt=True),
        Component("transformer", ("LTX2VideoTransformer3DModel",)),
        Component("vae", ("AutoencoderKLLTX2Video",)),
        Component("audio_vae", ("AutoencoderKLLTX2Audio",)),
        Component("vocoder", ("LTX2Vocoder",)),
        Component("scheduler", ("FlowMatchEulerDiscreteScheduler",), module=False),
    )
    denoiser = "transformer"
    lora_loader = "LTX2LoraLoaderMixin"
    makes_sound = True

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        tokens = OPTIONS["text_tokens"]
        if path is None:
            return Rules(size_multiple=32, frame_step=8, text_tokens=tokens, modes=self.modes, schedulers=("model",),
                         min_steps=scheduler_min_steps(None))
        vae = config(path, "vae")
        spatial = int(vae.get("spatial_compression_ratio") or 32)
        temporal = int(vae.get("temporal_compression_ratio") or 8)
        tr = config(path, "transformer")
        return Rules(size_multiple=spatial * (tr.get("patch_size") or 1), frame_step=temporal * (tr.get("patch_size_t") or 1),
                     text_tokens=tokens, modes=self.modes, schedulers=("model",),
                     min_steps=scheduler_min_steps(path))

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        if getattr(request, "reference_images", None):
            raise InvalidRequest(f"reference_images: {model} (LTX-2) takes one control input, control_video, as an "
                                 "IC-LoRA's reference video; leave it out", field="reference_images")
        if getattr(request, "control_video", None) and getattr(request, "control_scale", 1.0) > 1.0:
            raise InvalidRequest(f"control_scale: {model} (LTX-2) attends to its reference video at a strength from 0 "
                                 "(not at all) to 1 (fully); nearest valid: 1.0", field="control_scale")
        if getattr(request, "control_video", None) and not getattr(request, "loras", None):
            raise InvalidRequest(f"control_video: {model} (LTX-2) follows a reference video through an IC-LoRA; give "
                                 "the IC-LoRA as lora", field="control_video")
        super().check(request, path, model=model)
        defaults = folder_info(Path(path), lambda name: self)[1] if path is not None else None
        opts = _merged(defaults, request)
        upscale.check(path, request, opts, self.rules(path).size_multiple, model=model)
        if getattr(request, "control_video", None) and path is not None:  # the LoRA files this machine can read
            files = []
            for lora in request.loras:
                try:
                    files += lora_files(Path(lora.path).expanduser()).values()
                except (OSError, RuntimeError):  # a name no file can have: refused where the adapters load
                    continue
            self.check_reference(path, request, opts, reference_downscale(files))

    def check_reference(self, path: Path, request, opts: dict[str, Any], downscale: int) -> None:
        """Refuse a size at which the IC-LoRA's reference would be under one latent a side."""
        stage = (upscale.upsampler_scale(path) or 1.0) if opts.get("latent_upscale") else 1.0
        spatial = int(config(path, "vae").get("spatial_compression_ratio") or 32)
        check_reference_size(request.height, request.width, downscale, spatial, stage=stage,
                             multiple=self.rules(path).size_multiple)

    def takes_last_image(self, path: Path | None) -> bool:
        return True  # LTX2ConditionPipeline's conditions at the first and the last latent frame

    def takes_control(self, path: Path | None) -> bool:
        return True  # control_video: an IC-LoRA's reference video (LTX2InContextPipeline)

    def control_fields(self, path: Path | None) -> tuple[str, ...]:
        return ("control_video",)

    def clip_is_control(self, path: Path | None) -> bool:
        return False  # the reference steers an IC-LoRA; a clip to continue (extend) is another input

    def guidance_passes(self, request) -> int:
        return Guidance.of(request.guidance_scale, {**OPTIONS, **_request_options(request)}).passes()

    def prompt_tokens(self, path: Path, request, defaults: dict[str, Any]) -> int | None:
        return int(_merged(defaults, request)["text_tokens"])

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        c, memory, device = model.components, ctx.memory, model.plan.device
        opts = options(model, request)
        transformer, vae, audio_vae = c["transformer"], c["vae"], c["audio_vae"]
        big = grid = Grid.of(request, vae, transformer)
        if opts["latent_upscale"]:  # stage 1 at the size the upsampler brings to the request's
            path = Path(model.source.path)
            # (checked again on the folder: a hub model's folder is known only once it is resolved)
            upscale.check(path, request, opts, grid.spatial * transformer.config.patch_size, model=model.source.id)
            h, w = upscale.stage_one_size(request.height, request.width, upscale.upsampler_scale(path), grid.spatial)
            grid = dataclasses.replace(big, height=h // grid.spatial, width=w // grid.spatial)
        audio = AudioGrid.of(request.num_frames, request.fps, audio_vae)
        guidance = Guidance.of(request.guidance_scale, opts)

        # 1. The prompt (and the negative prompt, with classifier-free guidance) through Gemma, then the connectors.
        ctx.on_stage("encode_prompt")
        tokens = int(opts["text_tokens"])

        def texts():
            with resident(c["text_encoder"], device, memory.offload):
                embeds, mask = gemma_embeds(model, request.prompt, tokens, ctx.warnings)
                if guidance.uses_cfg:
                    negative, negative_mask = gemma_embeds(model, request.negative_prompt or "", tokens, [])
                    embeds, mask = torch.cat([negative, embeds]), torch.cat([negative_mask, mask])
            side = getattr(c["tokenizer"], "padding_side", "left")
            with resident(c["connectors"], device, memory.offload):
                text = connect(c["connectors"], embeds, mask, side)
            return text.video, text.audio, text.mask

        video_text, audio_text, text_mask = promptcache.encoded(
            model, ctx.warnings, texts, prompt=request.prompt, tokens=tokens,
            negative=(request.negative_prompt or "") if guidance.uses_cfg else None)
        text = Text(video_text, audio_text, text_mask)
        free_text_encoders(model, memory, ("text_encoder", "connectors"))

        # 2. The image's first frame (image-to-video), noise (video, then audio), the shifted sigmas of both schedulers.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        mask = None
        if ctx.image is not None and ctx.last_image is None and ctx.control is None:
            with resident(vae, device, memory.offload):
                init, mask = image_latents(vae, ctx.image, grid, image_crf(model, opts), text.video.dtype, device)
        condition = stage_two = None
        reference = ctx.control.video if ctx.control is not None else None
        if ctx.last_image is not None or reference is not None:  # the condition / in-context pipelines' conditions
            from diffusers.pipelines.ltx2.utils import conditioning_frame_rate

            rate = conditioning_frame_rate(float(request.fps), opts["motion_speed"])
            downscale = reference_downscale(p.file for p in model.adapter_parts) if reference is not None else 1
            if reference is not None:  # (a server's LoRA paths are known only now)
                self.check_reference(Path(model.source.path), request, opts, downscale)

            def images_on_big(up, gen):  # two-stage: the images (not the reference) condition stage 2 on its grid
                with resident(vae, device, memory.offload):
                    return conditioned(vae, transformer, request, big, crf=image_crf(model, opts), rate=rate,
                                       noise_scale=upscale.STAGE_2_SIGMAS[0], generator=gen, device=device,
                                       image=ctx.image, last_image=ctx.last_image, latents=up)

            stage_two = images_on_big if ctx.image is not None or ctx.last_image is not None else None
            with resident(vae, device, memory.offload):
                latents, condition = conditioned(
                    vae, transformer, request, grid, crf=image_crf(model, opts), rate=rate,
                    noise_scale=(opts["sigmas"] or [1.0])[0], generator=generator, device=device, image=ctx.image,
                    last_image=ctx.last_image, reference=reference, downscale=downscale,
                    attention=request.control_scale, attention_mask=ctx.control.mask if reference is not None else None)
            sound = audio_noise(audio, generator, device, packed=True)
        else:
            latents, sound = noise(grid, audio, transformer.config.in_channels, generator, device)
        if mask is not None:
            latents = init * mask.unsqueeze(-1) + latents * (1 - mask.unsqueeze(-1))
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        timesteps(scheduler, request.num_inference_steps, latents.shape[1], opts["sigmas"], device)
        # stage 1's steps are its schedule's (a model's own sigmas may set their count), read before a resume
        stages = upscale.Stages(len(scheduler.timesteps)) if opts["latent_upscale"] else None
        state = LoopState(latents, {"audio": sound})
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        audio_scheduler = copy.deepcopy(scheduler)  # as stock: the same schedule, stepped beside the video's

        # 3. Denoise both streams (then, two-stage, upscale and refine them); progress and previews see the
        # unpacked video latents.
        total = stages.total if stages else len(scheduler.timesteps)
        ctx.on_stage("denoise", start, total)
        model_step = step_fn(transformer, (scheduler, audio_scheduler), grid, audio, text, guidance, opts,
                             float(request.fps), device, mask, condition)
        second = (upscale.SecondStage(model, ctx, opts, float(request.fps), (big, grid), audio, text, guidance,
                                      scheduler, generator, first=condition, conditions=stage_two,
                                      plain=reference is not None) if stages else None)

        def step(i: int, s: LoopState) -> None:
            if stages is not None and i >= stages.first:
                second.step(i - stages.first, s)
                return
            s.latents, s.extra["audio"] = model_step(i, scheduler.timesteps[i], s.latents, s.extra["audio"])

        def unpack(x, done: int):  # the latents after ``done`` steps
            if stages is not None and done > stages.first:
                return second.unpack(x)
            return grid.unpack(x if condition is None else condition.clip(x))

        loop_ctx = dataclasses.replace(ctx, on_step=lambda i, n, x: ctx.on_step(i, n, unpack(x, i)))
        with resident(transformer, device, memory.offload):
            denoise(loop_ctx, total, state, step, checkpoints, start=start)

        # 4. Decode the frames (tiled and frame-wise under the low memory plan, as LTX-Video), then the sound.
        ctx.on_stage("decode")
        decode_plan(vae, memory)  # tiled and frame-wise under the low plan
        with resident(vae, device, memory.offload):
            frames = decode_video(vae, unpack(state.latents, total), text.video.dtype, opts, generator, device)
        with resident(audio_vae, device, memory.offload), resident(c["vocoder"], device, memory.offload):
            samples = decode_audio(audio_vae, c["vocoder"], state.extra["audio"], audio)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed,
                         audio=samples)

    def preview(self, model, latents):
        return spatial_preview(model, latents)

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One Gemma encoding with the connectors, one transformer pass over both streams' tokens (the guidance
        batch), one decode of the whole clip and of its sound."""
        import torch

        path = Path(path)
        m, (f, h, w) = meta_video(path, frames, height, width)
        tr, vae, audio_vae = m["transformer"], m["vae"], m["audio_vae"]
        audio = AudioGrid.of(frames, 24.0, audio_vae)
        meta = meta_kwargs()
        tokens = OPTIONS["text_tokens"]
        ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
        text_peak = meta_cost(lambda: m["text_encoder"](input_ids=ids, output_hidden_states=True), part="text").peak
        x = torch.zeros(batch, f * h * w, tr.config.in_channels, **meta)
        a = torch.zeros(batch, audio.frames, tr.config.audio_in_channels, **meta)
        embeds = torch.zeros(batch, tokens, tr.config.caption_channels, **meta)
        audio_embeds = torch.zeros(batch, tokens, tr.config.caption_channels, **meta)
        step = meta_cost(lambda: tr(
            hidden_states=x, audio_hidden_states=a, encoder_hidden_states=embeds, audio_encoder_hidden_states=audio_embeds,
            timestep=torch.zeros(batch, **meta), num_frames=f, height=h, width=w, audio_num_frames=audio.frames,
            return_dict=False))
        z = torch.zeros(1, vae.config.latent_channels, f, h, w, **meta)
        decode = meta_cost(lambda: vae.decode(z), part="vae")
        mel = torch.zeros(1, audio.channels, audio.frames, audio.mel_bins, **meta)
        audio_peak = meta_cost(lambda: m["vocoder"](audio_vae.decode(mel).sample), part="vae").peak
        vae_roles, up_peak = ["vae", "audio_vae", "vocoder"], 0
        upsampler = upscale.meta_upsampler(str(path))
        if upsampler is not None:  # the two-stage path's pass over stage 1's latents (counted whenever it is here)
            m = {**m, **cast({upscale.UPSAMPLER: upsampler})}
            scale = upscale.upsampler_scale(path)
            small = torch.zeros(1, vae.config.latent_channels, f, max(1, round(h / scale)), max(1, round(w / scale)), **meta)
            up_peak = meta_cost(lambda: upsampler(small), part="vae").peak
            vae_roles.append(upscale.UPSAMPLER)
        return measured(m, acts={"text": text_peak, "transformer": step.peak, "vae": max(decode.peak, audio_peak, up_peak)},
                        roles={"text": ["text_encoder", "connectors"], "denoise": ["transformer"], "vae": vae_roles},
                        step=step, decode=decode, passes=1, latents_bytes=(x[0].numel() + a[0].numel()) * 4 * (1 + batch),
                        frames=frames, height=height, width=width, vae_scales_with="clip")

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """17 frames (3 latent frames) at 64 px (2 latent rows)."""
        return 2 * self.frames_per_latent(path) + 1, 2 * self.rules(Path(path)).size_multiple

    def frames_per_latent(self, path: Path) -> int:
        return int(config(Path(path), "vae").get("temporal_compression_ratio") or 8)


def image_crf(model, opts: dict[str, Any]) -> int:
    """The H.264 CRF the conditioning image is re-compressed at: the model's default, else the one for its text
    encoder's generation (LTX2ImageToVideoPipeline's rule: 33 with Gemma 3), read from the folder's config."""
    from diffusers.pipelines.ltx2.utils import resolve_default_image_crf

    if opts.get("image_crf") is not None:
        return int(opts["image_crf"])
    model_type = config(Path(model.source.path), "text_encoder").get("model_type")
    return resolve_default_image_crf(SimpleNamespace(config=SimpleNamespace(model_type=model_type)))


def _request_options(request) -> dict[str, Any]:
    extras = getattr(request, "extras", None) or {}
    return {k: v for k, v in extras.items() if k in OPTIONS and v is not None}


def options(model, request) -> dict[str, Any]:
    """The stock call's extra arguments: the request's (when it carries them), else the model's defaults, else
    LTX2Pipeline's."""
    return _merged(getattr(model.source, "defaults", None), request)


def _merged(defaults: dict[str, Any] | None, request) -> dict[str, Any]:
    return {**OPTIONS, **{k: v for k, v in (defaults or {}).items() if k in OPTIONS}, **_request_options(request)}
