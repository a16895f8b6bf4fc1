"""Wan 2.2 Animate (``WanAnimatePipeline``): the character of a reference image moved by a driving video's pose and
face, or put into the driving video's scene in its place (replace mode).

The inputs are the request's ``image`` (the character), ``control_video`` (the pose video: skeletons drawn frame by
frame), ``face_video`` (the driving face, cropped frame by frame, scaled to the motion encoder's size) and, for
replace mode, ``background_video`` (the scene) with ``mask_video`` (white where the character goes). The clip is
made in segments of ``segment_frames`` frames; each segment after the first continues the last ``segment_overlap``
decoded frames of the one before, as the stock call does: the pose and face videos are padded by reflection to
whole segments and the clip trimmed to ``num_frames``.

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: Wan's prompt encoding (UMT5, 512
tokens), the reference image's CLIP features and VAE latent (with its mask), then per segment its fp32 noise from
the request's CPU generator, the pose latents, the previous segment's frames (or the background) through the VAE
with their mask, the folder's scheduler, the conditional and (with guidance) unconditional passes (the face
blanked), and the segment decoded without its reference frame. The stock call's own steps that are functions of
their inputs (its masks, reference and condition latents, reflection padding) are called as they are.

Every segment's steps are steps of one run: progress and previews per step, cancel between steps without decoding,
checkpoints (the finished segments' latents with the scheduler and generator) that resume to the same frames at any
step of any segment. With a stream (``--stream``) each segment goes out when it is decoded: its frames are final.

LoRA: ``WanLoraLoaderMixin``'s layout (as the stock pipeline loads it). Step caches: refused by name (the face
adapter between the blocks is outside the hooks diffusers' caches know).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import Component, RunContext, Rules
from t2v.families.common import GroupOffload
from t2v.families.dryrun import measured
from t2v.families.lora import DiffusersLora
from t2v.families.meta import meta_modules
from t2v.families.wan import SCHEDULERS, TEXT_TOKENS, WanFamily, encode_image, encode_prompts, latent_stats
from t2v.models.catalog import config
from t2v.models.hub.wan_animate import CARD, OVERLAPS
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.vae import video_uint8

TRANSFORMER = "WanAnimateTransformer3DModel"
NEEDED = ("control_video", "face_video")  # the pose video and the face video: every run has both


class WanAnimateFamily(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    card = CARD
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False,
                  prompt=True),
        Component("text_encoder", ("UMT5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", (TRANSFORMER,)),
        Component("vae", ("AutoencoderKLWan",)),
        Component("scheduler", ("UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler",
                                "DPMSolverMultistepScheduler"), module=False),
        Component("image_encoder", ("CLIPVisionModel", "CLIPVisionModelWithProjection"), weight_stem="model"),
        Component("image_processor", ("CLIPImageProcessor",), module=False),
    )
    denoiser = "transformer"
    caches = ()  # the face adapter runs between the blocks, outside what diffusers' cache hooks know
    lora_loader = "WanLoraLoaderMixin"

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        """Sizes a multiple of the VAE's scale times the patch (16); any frame count (segments of 4k+1 frames,
        trimmed); an image (the character) always; the flow-matching schedulers."""
        if path is None:
            return Rules(size_multiple=16, text_tokens=TEXT_TOKENS, modes=self.modes, schedulers=SCHEDULERS)
        vae, tr = config(path, "vae"), config(path, "transformer")
        flow = config(path, "scheduler", "scheduler_config.json")
        return Rules(size_multiple=(vae.get("scale_factor_spatial") or 8) * max(tr.get("patch_size", (1, 2, 2))[1:]),
                     text_tokens=TEXT_TOKENS, modes=self.modes,
                     schedulers=SCHEDULERS if flow.get("use_flow_sigmas") else ("model",))

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        """The inputs first (the character image, the pose and face videos, replace mode's pair), then the
        segments (4k+1 frames, 1 or 5 carried over, a clip longer than that), then the family's rules."""
        if getattr(request, "image", None) is None:
            raise InvalidRequest(f"image: {model} (Wan-Animate) moves the character of an image: give it as image",
                                 field="image")
        for name in NEEDED:
            if not getattr(request, name, None):
                what = "the pose video (skeletons, frame by frame)" if name == "control_video" else \
                    "the face video (the driving face cropped, frame by frame)"
                raise InvalidRequest(f"{name}: {model} (Wan-Animate) follows {what}: give it as {name}", field=name)
        if getattr(request, "mask_video", None) and not getattr(request, "background_video", None):
            raise InvalidRequest(f"background_video: {model} (Wan-Animate) with mask_video replaces a character in a "
                                 "scene: give the scene as background_video", field="background_video")
        if getattr(request, "reference_images", ()):
            raise InvalidRequest(f"reference_images: {model} (Wan-Animate) takes one character image, as image",
                                 field="reference_images")
        if getattr(request, "control_scale", 1.0) != 1.0:
            raise InvalidRequest(f"control_scale: {model} (Wan-Animate) has no control strength; leave it out",
                                 field="control_scale")
        extras = getattr(request, "extras", {}) or {}
        segment, overlap = extras.get("segment_frames"), extras.get("segment_overlap")
        if segment is not None and (segment - 1) % 4:
            near = (segment - 1) // 4 * 4 + 1
            near = near if segment - near <= near + 4 - segment else near + 4
            raise InvalidRequest(f"extras.segment_frames: {segment} is not 4k+1, which {model}'s segments are; nearest "
                                 f"valid: {near}", field="extras.segment_frames")
        if overlap is not None and overlap not in OVERLAPS:
            near = min(OVERLAPS, key=lambda v: abs(v - overlap))
            raise InvalidRequest(f"extras.segment_overlap: {overlap} frames; {model} carries 1 or 5 over; nearest "
                                 f"valid: {near}", field="extras.segment_overlap")
        if segment is not None and overlap is not None and segment - overlap < overlap:
            # a segment's new frames are what the next one carries over (the stock call fails on fewer)
            near = -(-(2 * overlap - 1) // 4) * 4 + 1
            raise InvalidRequest(f"extras.segment_frames: segments of {segment} frames leave fewer new frames than "
                                 f"the {overlap} carried over; nearest valid: {near}", field="extras.segment_frames")
        n = getattr(request, "num_frames", None)
        if n is not None and overlap is not None and n <= overlap:
            raise InvalidRequest(f"num_frames: {n}; {model} makes more frames than a segment carries over "
                                 f"({overlap}); nearest valid: {overlap + 1}", field="num_frames")
        super().check(request, path, model=model)

    def takes_control(self, path: Path | None) -> bool:
        return True

    def control_fields(self, path: Path | None) -> tuple[str, ...]:
        return ("control_video", "face_video", "mask_video", "background_video")

    def clip_is_control(self, path: Path | None) -> bool:
        return True

    def denoised_frames(self, request, defaults: dict[str, Any]) -> int | None:
        """A clip longer than a segment is denoised one segment at a time."""
        segment = (request.extras or {}).get("segment_frames") or defaults.get("segment_frames")
        return segment if segment and request.num_frames and request.num_frames > segment else None

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        c, memory, device = model.components, ctx.memory, model.plan.device
        transformer, vae = c["transformer"], c["vae"]
        dtype = transformer.dtype
        run = Segments(model, request, ctx)

        # 3. The prompt; 4. the character's CLIP features and its latent (with its mask).
        ctx.on_stage("encode_prompt")
        embeds, negative = encode_prompts(model, request, ctx, TEXT_TOKENS, dtype)
        with resident(c["image_encoder"], device, memory.offload):
            image_embeds = encode_image(model, ctx.image).to(dtype)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        with resident(vae, device, memory.offload):
            reference = run.steps.prepare_reference_image_latents(run.image_pixels(), 1, generator=generator,
                                                                  device=device)

        # 6. The schedule (set again for every segment, as stock does); 8. the segments' steps as one run.
        steps = request.num_inference_steps
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        state = LoopState(torch.zeros(1), {"done": run.no_segments()})
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        ctx.on_stage("denoise", start, run.count * steps)

        def step(n: int, s: LoopState) -> None:
            k, i = divmod(n, steps)
            if i == 0:  # a new segment: its noise, the schedule
                s.latents = run.noise(generator)
                scheduler.set_timesteps(steps, device=device)
                scheduler.set_begin_index(0)
            cond = run.condition(k, s.extra["done"], reference, generator)
            t = scheduler.timesteps[i]
            x = torch.cat([s.latents, cond["reference"]], dim=1).to(dtype)
            kw = dict(hidden_states=x, timestep=t.expand(1), encoder_hidden_states_image=image_embeds,
                      pose_hidden_states=cond["pose"], return_dict=False)
            out = transformer(encoder_hidden_states=embeds, face_pixel_values=cond["face"], **kw)[0]
            if negative is not None:  # the face blanked (all -1) for the unconditional pass, as stock does
                face = cond.setdefault("blank", cond["face"] * 0 - 1)  # (once a segment, dropped with it)
                uncond = transformer(encoder_hidden_states=negative, face_pixel_values=face, **kw)[0]
                out = uncond + request.guidance_scale * (out - uncond)
            s.latents = scheduler.step(out, t, s.latents, return_dict=False)[0]
            if i == steps - 1:  # the segment is done: kept, decoded for the next one (and the stream)
                s.extra["done"] = torch.cat([s.extra["done"], s.latents[None].float()])
                run.segment_done(s.extra["done"])

        with resident(transformer, device, memory.offload):
            denoise(ctx, run.count * steps, state, step, checkpoints, start=start)

        # 9. Every segment decoded (a stream decoded them already), trimmed to the clip.
        ctx.on_stage("decode")
        return EngineRun(frames=run.frames(state.extra["done"]), warnings=ctx.warnings,
                         resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return WanFamily.preview(self, model, latents[:, :16])

    def guidance_passes(self, request) -> int:
        return 2 if request.guidance_scale > 1.0 else 1

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text and one image encoding, one transformer pass over a segment of ``frames`` (with the reference
        frame, the pose latents and the face frames), one segment's decode and encode."""
        import torch

        path = Path(path)
        m = cast(meta_modules(str(path)))
        tr, vae, meta = m["transformer"], m["vae"], meta_kwargs()
        spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
        f, h, w = (frames - 1) // temporal + 1, height // spatial, width // spatial
        ids = torch.zeros(1, TEXT_TOKENS, dtype=torch.long, device="meta")
        text = meta_cost(lambda: m["text_encoder"](input_ids=ids), part="text").peak
        enc = m["image_encoder"].config
        pixels = torch.zeros(1, enc.num_channels, enc.image_size, enc.image_size, **meta)
        text = max(text, meta_cost(lambda: m["image_encoder"](pixel_values=pixels, output_hidden_states=True),
                                   part="text").peak)
        image_embeds = torch.zeros(1, (enc.image_size // enc.patch_size) ** 2 + 1, tr.config.image_dim, **meta)
        latent = tr.config.out_channels
        size = tr.config.motion_encoder_size
        step = meta_cost(lambda: tr(
            hidden_states=torch.zeros(1, tr.config.in_channels, f + 1, h, w, **meta), timestep=torch.zeros(1, **meta),
            encoder_hidden_states=torch.zeros(1, TEXT_TOKENS, tr.config.text_dim, **meta),
            encoder_hidden_states_image=image_embeds, pose_hidden_states=torch.zeros(1, latent, f, h, w, **meta),
            face_pixel_values=torch.zeros(1, 3, frames, size, size, **meta), return_dict=False))
        decode = meta_cost(lambda: vae.decode(torch.zeros(1, vae.config.z_dim, f, h, w, **meta)), part="vae")
        clip = torch.zeros(1, 3, frames, height, width, **meta)
        vae_peak = max(decode.peak, meta_cost(lambda: vae.encode(clip), part="vae").peak)
        latent_bytes = latent * (f + 1) * h * w * 4
        return measured(m, acts={"text": text, "transformer": step.peak, "vae": vae_peak},
                        roles={"text": ["text_encoder", "image_encoder"], "denoise": ["transformer"], "vae": ["vae"]},
                        step=step, decode=decode, passes=batch, frames=frames, height=height, width=width,
                        vae_scales_with="area", latents_bytes=latent_bytes * 4)

    def reference_shape(self, path: Path) -> tuple[int, int]:
        m = self.rules(Path(path)).size_multiple
        return 9, -(-64 // m) * m

    def frames_per_latent(self, path: Path) -> int:
        return int(config(Path(path), "vae").get("scale_factor_temporal") or 4)


class Segments:
    """One run's segments: how many, their inputs (the pose and face videos padded by reflection to whole segments,
    the background and mask of replace mode), each segment's conditions (built once per segment, again after a
    resume), the decoded frames (kept in memory; a checkpoint keeps the segments' latents) and the stream."""

    def __init__(self, model, request, ctx: RunContext):
        import torch
        from diffusers.video_processor import VideoProcessor

        c = model.components
        self.vae, self.transformer, self.device = c["vae"], c["transformer"], model.plan.device
        self.request, self.memory, self.on_frames, self.ctx = request, ctx.memory, ctx.on_frames, ctx
        self.segment, self.overlap = request.extras["segment_frames"], request.extras["segment_overlap"]
        self.steps = stock_steps(self.vae, self.transformer)
        self.effective = self.segment - self.overlap
        self.count = segments_of(request.num_frames, self.segment, self.overlap)
        self.target = self.overlap + self.count * self.effective  # what the pose and face videos are padded to
        spatial = self.vae.config.scale_factor_spatial
        self.latent_shape = (1, self.vae.config.z_dim, (self.segment - 1) // self.vae.config.scale_factor_temporal + 2,
                             request.height // spatial, request.width // spatial)
        processor = VideoProcessor(vae_scale_factor=spatial)
        control, h, w = ctx.control, request.height, request.width
        size = self.transformer.config.motion_encoder_size

        def video(frames, height, width, proc=processor):  # padded to whole segments, as stock preprocesses it
            return proc.preprocess_video(self.steps.pad_video_frames(pil_frames(frames), self.target),
                                         height=height, width=width).to(self.device, dtype=torch.float32)

        self.pose, self.face = video(control.video, h, w), video(control.face, size, size)
        self.replace = control.background is not None
        if self.replace:
            self.background = video(control.background, h, w)
            masks = VideoProcessor(vae_scale_factor=spatial, do_normalize=False, do_convert_grayscale=True)
            self.mask = video(control.mask * 255, h, w, masks)
        self.conditions: dict[int, dict[str, Any]] = {}
        self.decoded: list = []  # float frames of segments 0, 1, ... (each without the frames it took over)
        self.processor = processor

    def image_pixels(self):
        """The character image as stock preprocesses it: fitted into the frame (``fill``), black around it."""
        import torch
        from diffusers.pipelines.wan.image_processor import WanAnimateImageProcessor

        pre = WanAnimateImageProcessor(vae_scale_factor=self.vae.config.scale_factor_spatial,
                                       spatial_patch_size=self.transformer.config.patch_size[-2:], resample="bilinear",
                                       fill_color=0)
        return pre.preprocess(self.ctx.image, height=self.request.height, width=self.request.width,
                              resize_mode="fill").to(self.device, dtype=torch.float32)

    def no_segments(self):
        import torch

        return torch.zeros(0, *self.latent_shape)

    def noise(self, generator):
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(self.latent_shape, generator=generator, device=torch.device(self.device),
                            dtype=torch.float32)

    def condition(self, k: int, done, reference, generator) -> dict[str, Any]:
        """Segment ``k``'s pose latents, face frames and reference latents (the character's, then the previous
        segment's last frames or replace mode's background, with their mask), built once."""
        import torch

        if k in self.conditions:
            return self.conditions[k]
        self.conditions = {}  # (the segment before is not needed again)
        start, end = k * self.effective, k * self.effective + self.segment
        dtype = self.transformer.dtype
        with resident(self.vae, self.device, self.memory.offload):
            pose = self.steps.prepare_pose_latents(self.pose[:, :, start:end], 1, generator=generator,
                                                   device=self.device).to(dtype)
            prev = self.decode(done, k)[-1][:, :, -self.overlap:] if k else None
            cond = self.steps.prepare_prev_segment_cond_latents(
                prev, background_video=self.background[:, :, start:end] if self.replace else None,
                mask_video=self.mask[:, :, start:end] if self.replace else None, batch_size=1,
                segment_frame_length=self.segment, start_frame=start, height=self.request.height,
                width=self.request.width, prev_segment_cond_frames=self.overlap,
                task="replace" if self.replace else "animate", generator=generator, device=self.device)
        out = {"pose": pose, "face": self.face[:, :, start:end].to(dtype),
               "reference": torch.cat([reference, cond], dim=2)}
        self.conditions[k] = out
        return out

    def decode(self, done, upto: int) -> list:
        """The decoded frames of the first ``upto`` segments (``done``: every finished segment's latents),
        decoding those not decoded yet."""
        import torch

        mean, inv_std = latent_stats(self.vae, device=self.device, dtype=self.vae.dtype)
        with resident(self.vae, self.device, self.memory.offload), torch.no_grad():
            for k in range(len(self.decoded), upto):
                z = done[k].to(self.device, self.vae.dtype)
                out = self.vae.decode((z / inv_std + mean)[:, :, 1:], return_dict=False)[0]
                self.decoded.append(out[:, :, self.overlap:] if k else out)
        return self.decoded[:upto]

    def segment_done(self, done) -> None:
        """A segment is done: with a stream, it is decoded and the clip so far goes out."""
        if self.on_frames is not None:
            self.on_frames(self.frames(done))

    def frames(self, done):
        """The clip so far as (F, H, W, 3) uint8 frames, at most ``num_frames``."""
        import torch

        video = torch.cat(self.decode(done, len(done)), dim=2)[:, :, :self.request.num_frames]
        return video_uint8(self.processor, video)


def stock_steps(vae, transformer):
    """The stock pipeline's steps that are functions of their inputs (masks, reference and condition latents,
    reflection padding), bound to this run's VAE: called as they are, so their fixes arrive with diffusers."""
    from diffusers import WanAnimatePipeline

    names = ("get_i2v_mask", "prepare_reference_image_latents", "prepare_prev_segment_cond_latents",
             "prepare_pose_latents", "pad_video_frames")
    steps = type("AnimateSteps", (), {name: getattr(WanAnimatePipeline, name) for name in names})()
    steps.vae = vae
    steps.vae_scale_factor_temporal = vae.config.scale_factor_temporal
    steps.vae_scale_factor_spatial = vae.config.scale_factor_spatial
    return steps


def pil_frames(frames) -> list:
    """(F, H, W, 3) or (F, H, W) uint8 frames as PIL images (what the stock call is given)."""
    from PIL import Image

    return [Image.fromarray(f) for f in frames]


def segments_of(num_frames: int, segment: int, overlap: int) -> int:
    """How many segments a clip of ``num_frames`` takes (the stock call's arithmetic: the frames after the first
    ``overlap`` padded to whole segments of ``segment - overlap`` new frames)."""
    effective = segment - overlap
    last = (num_frames - overlap) % effective
    return (num_frames + (effective - last if last else 0)) // effective
