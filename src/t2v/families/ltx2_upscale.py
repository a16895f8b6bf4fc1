"""LTX-2's two-stage path (``latent_upscale``), as diffusers' LTX-2 docs run it: the clip is made at the size
divided by the latent upsampler's scale (stage 1, the model's own steps and guidance), its latents are upscaled
by the folder's ``latent_upsampler/`` (``LTX2LatentUpsamplePipeline`` with ``output_type="latent"``), noised
again at the first of the stage-2 sigmas (``STAGE_2_DISTILLED_SIGMA_VALUES``) and refined in those three steps
(stage 2: ``LTX2Pipeline`` with ``latents``, ``audio_latents``, ``noise_scale``, ``sigmas``, guidance scale 1 and
the model's other guidance, on a scheduler without dynamic shifting), with the model's distilled LoRA on the
transformer when it has one (``stage_2_lora`` in its defaults: a file in the model folder; a distilled
checkpoint needs none). The sound is made in stage 1 and refined with the frames in stage 2.

With an image both stages are ``LTX2ImageToVideoPipeline``'s: stage 1 from the image at its size, and in stage 2
the first latent frame (stage 1's, upscaled) keeps no noise and is never stepped.

With a last frame both stages are ``LTX2ConditionPipeline``'s (LTX-2's keyframe interpolation): the first and last
images condition stage 1 at its size and stage 2 at the output's, where the upscaled latents are the call's
``latents``. With an IC-LoRA's reference video stage 1 is ``LTX2InContextPipeline``'s and stage 2 refines without the
reference and without the run's LoRAs (the stage-2 LoRA alone), as that pipeline's documented two-stage recipe and
LTX-2's own IC-LoRA pipeline run it; a first or last image conditions both stages.

Both stages are one loop for progress, cancel and checkpoints: a checkpoint of either stage resumes to the same
frames and sound. Not done: AdaIN and tone mapping of the upscaled latents (the upsample pipeline's
``adain_factor`` and ``tone_map_compression_ratio``, off by default there too).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families.ltx2_steps import Guidance, step_fn, timesteps
from t2v.families.ltx_steps import stats
from t2v.models.adapters import AdapterPart
from t2v.runtime import memoized
from t2v.sampling.offload import resident

UPSAMPLER = "latent_upsampler"  # the hub repos' folder (not in model_index.json: LTX2Pipeline does not load it)
STAGE_2_SIGMAS = (0.909375, 0.725, 0.421875)  # diffusers.pipelines.ltx2.utils.STAGE_2_DISTILLED_SIGMA_VALUES


def upsampler_scale(path: Path) -> float | None:
    """The spatial scale of the folder's latent upsampler (2.0 for LTX-2's x2), None when it has none."""
    try:
        cfg = json.loads((Path(path) / UPSAMPLER / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or not cfg.get("spatial_upsample", True) or cfg.get("temporal_upsample"):
        return None
    return float(cfg.get("rational_spatial_scale") or 2.0) if cfg.get("use_rational_resampler", True) else 2.0


def stage_one_size(height: int, width: int, scale: float, multiple: int) -> tuple[int, int] | None:
    """Stage 1's (height, width) for an output of ``height`` x ``width``: each divided by ``scale``, a multiple
    of ``multiple`` whose latents the upsampler brings back to the output's; None when a side has none."""
    out = []
    for side in (height, width):
        small = side / scale
        if side % multiple or abs(small - round(small)) > 1e-6 or round(small) <= 0 or round(small) % multiple:
            return None
        out.append(round(small))
    return out[0], out[1]


def nearest_size(side: int, scale: float, multiple: int) -> int:
    """The output side nearest ``side`` (the smaller on a tie) that a stage 1 at ``1/scale`` of it can make."""
    made = (multiple * j * scale for j in range(1, 2 * side // multiple + 3))
    valid = [round(x) for x in made if abs(x - round(x)) < 1e-6 and round(x) % multiple == 0]
    return min(valid, key=lambda v: (abs(v - side), v))


def stage_two_lora(path: Path, name: str | None) -> Path | None:
    """The model's distilled LoRA for stage 2: ``name`` (a file of the model folder, from its defaults), or None."""
    if not name:
        return None
    folder = Path(path).resolve()
    file = (folder / name).resolve()
    if folder not in file.parents:
        raise ModelUnavailable(f"stage_2_lora: {name} is outside the model folder {folder}")
    return file


def check(path: Path | None, request, opts: dict[str, Any], multiple: int, *, model: str) -> None:
    """Refuse a ``latent_upscale`` request this folder cannot run, naming the field and the nearest valid value."""
    if not opts.get("latent_upscale") or path is None:
        return
    scale = upsampler_scale(path)
    if scale is None:
        raise InvalidRequest(f"extras.latent_upscale: {model} has no {UPSAMPLER}/ folder (a spatial "
                             "LTX2LatentUpsamplerModel, as Lightricks/LTX-2 has); leave latent_upscale off",
                             field="extras.latent_upscale")
    for name in ("height", "width"):
        side = getattr(request, name)
        if side and stage_one_size(side, side, scale, multiple) is None:
            raise InvalidRequest(f"{name}: {side} px cannot be made at 1/{scale:g} and upscaled {scale:g}x "
                                 f"(stage 1 needs a multiple of {multiple}); nearest valid: "
                                 f"{nearest_size(side, scale, multiple)}", field=name)
    lora = stage_two_lora(path, opts.get("stage_2_lora"))
    if lora is not None and not lora.is_file():
        raise InvalidRequest(f"extras.latent_upscale: the second stage's LoRA {lora.name} is not in {model}; put it "
                             "there (t2v models pull brings it), or set stage_2_lora to null in the folder's "
                             "t2v.json for a distilled checkpoint", field="extras.latent_upscale")


@memoized("ltx2-latent-upsamplers", 2)
def load_upsampler(path: str, dtype: str, device: str):
    """The folder's ``LTX2LatentUpsamplerModel`` in ``dtype`` on ``device`` (kept for the next run)."""
    import torch
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    model = LTX2LatentUpsamplerModel.from_pretrained(path, subfolder=UPSAMPLER, torch_dtype=getattr(torch, dtype))
    return model.to(device).eval().requires_grad_(False)


@dataclasses.dataclass(frozen=True)
class Stages:
    """The steps of both stages in one loop: stage 1's ``first`` steps, then stage 2's."""

    first: int
    second: int = len(STAGE_2_SIGMAS)

    @property
    def total(self) -> int:
        return self.first + self.second


def upsampled(upsampler, vae, latents, small):
    """Stage 1's packed video latents on ``small`` upscaled, unnormalised and unpacked: what
    ``LTX2LatentUpsamplePipeline`` returns with ``output_type="latent"`` for stage 1's ``output_type="latent"``."""
    x = small.unpack(latents)
    mean, std = stats(vae, x)
    x = (x * std / vae.config.scaling_factor + mean).to(upsampler.device, upsampler.dtype)
    return upsampler(x)


def upscale(upsampler, vae, latents, small, big, generator, device, *, image: bool = False):
    """Stage 1's packed video latents on ``small`` (a :class:`t2v.families.ltx_steps.Grid`) to stage 2's on
    ``big``: unpacked and denormalised (the pipeline's ``output_type="latent"``), upscaled, normalised, and noised
    at the first stage-2 sigma with the generator (in the upsampler's dtype, as stock mixes them), packed; float32.
    With an ``image`` (LTX2ImageToVideoPipeline) the first latent frame is the image's and keeps no noise: the
    noise is drawn over the unpacked latents and the conditioning mask (packed) comes back too."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    up = upsampled(upsampler, vae, latents, small)
    mean, std = stats(vae, up)
    up = (up - mean) * vae.config.scaling_factor / std
    if image:
        keep = up.new_zeros((up.shape[0], 1, *up.shape[2:]))
        keep[:, :, 0] = 1.0
        scale = STAGE_2_SIGMAS[0] * (1 - keep)
        noise = randn_tensor(up.shape, generator=generator, device=up.device, dtype=up.dtype)
        noised = big.pack(scale * noise + (1 - scale) * up)
        return noised.to(device=device, dtype=torch.float32), big.pack(keep).squeeze(-1).to(device, torch.float32)
    up = big.pack(up)
    noise = randn_tensor(up.shape, generator=generator, device=up.device, dtype=up.dtype)
    return (STAGE_2_SIGMAS[0] * noise + (1 - STAGE_2_SIGMAS[0]) * up).to(device=device, dtype=torch.float32), None


def renoise_audio(audio_vae, sound, audio, generator):
    """Stage 1's packed audio latents as stage 2 takes them (denormalised and unpacked by stage 1, packed and
    normalised again by stage 2) and noised at the first stage-2 sigma with the generator; float32."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    mean = audio_vae.latents_mean.to(sound.device, sound.dtype)
    std = audio_vae.latents_std.to(sound.device, sound.dtype)
    x = audio.pack(audio.unpack(sound * std + mean))
    x = (x - mean) / std
    noise = randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (STAGE_2_SIGMAS[0] * noise + (1 - STAGE_2_SIGMAS[0]) * x).to(torch.float32)


def stage_two_schedule(scheduler, tokens: int, device) -> None:
    """Put stage 2's sigmas in ``scheduler``: the stage-2 values as they are (a scheduler without dynamic
    shifting or a terminal shift, as the docs make for stage 2); its step index starts again."""
    fresh = type(scheduler).from_config(scheduler.config, use_dynamic_shifting=False, shift_terminal=None)
    timesteps(fresh, len(STAGE_2_SIGMAS), tokens, list(STAGE_2_SIGMAS), device)
    for key, value in vars(fresh).items():
        if key not in ("config", "_internal_dict"):
            setattr(scheduler, key, value)


class SecondStage:
    """Stage 2 of a two-stage run, stepped by the run's loop after stage 1's steps: its first step upscales and
    noises both streams again and puts the stage-2 sigmas in the run's scheduler (so a checkpoint of either
    stage holds the schedule it needs); the first step it runs switches the transformer to the run's adapters
    plus the model's stage-2 LoRA and builds the step on the big grid at guidance scale 1.

    ``first``: stage 1's :class:`Conditioned` (a run with a last frame or a reference video: its appended tokens
    are dropped before upscaling); ``conditions``: a function of (upscaled latents or None, generator) giving stage
    2's conditioned, noised latents and their :class:`Conditioned` on the big grid (a run with a first or last
    image beside those); ``plain``: stage 2 runs without the run's adapters (an IC-LoRA's)."""

    def __init__(self, model, ctx, opts, fps: float, grids, audio, text, guidance, scheduler, generator, *,
                 first=None, conditions=None, plain: bool = False):

        self.model, self.ctx, self.opts, self.fps, self.audio = model, ctx, opts, fps, audio
        self.big, self.small = grids
        self.scheduler, self.generator = scheduler, generator
        self.guidance = Guidance.of(1.0, opts)
        # Stage 2's guidance is a subset of stage 1's: classifier-free only where the sound's scale asks for it.
        self.text = text if self.guidance.uses_cfg or not guidance.uses_cfg else text.positive()
        self.first, self.conditions = first, conditions
        self.plain = plain
        self.condition = None  # stage 2's conditions, once made
        self.model_step = None

    def step(self, i: int, s) -> None:
        if self.model_step is None:
            if i == 0:
                self.transition(s)
            self.start()
        s.latents, s.extra["audio"] = self.model_step(i, self.scheduler.timesteps[i], s.latents, s.extra["audio"])

    def unpack(self, latents):
        """Stage 2's video latents unpacked (the keyframe tokens dropped)."""
        return self.big.unpack(latents if self.condition is None else self.condition.clip(latents))

    def transition(self, s) -> None:
        c, device, memory = self.model.components, self.model.plan.device, self.ctx.memory
        vae = c["vae"]
        dtype = str(vae.dtype).removeprefix("torch.")
        upsampler = load_upsampler(str(self.model.source.path), dtype, "cpu" if memory.offload else device)
        with resident(upsampler, device, memory.offload):
            clip = s.latents if self.first is None else self.first.clip(s.latents)
            if self.conditions is not None:  # the condition pipeline's stage 2: its call with latents=
                latents, self.condition = self.conditions(upsampled(upsampler, vae, clip, self.small), self.generator)
                s.latents = latents.float()
            else:
                s.latents, _ = upscale(upsampler, vae, clip, self.small, self.big, self.generator, device,
                                       image=self.ctx.image is not None and self.first is None)
        s.extra["audio"] = renoise_audio(c["audio_vae"], s.extra["audio"], self.audio, self.generator)
        stage_two_schedule(self.scheduler, self.big.tokens, device)

    def start(self) -> None:
        import torch

        lora = stage_two_lora(self.model.source.path, self.opts.get("stage_2_lora"))
        parts = () if self.plain else tuple(self.model.adapter_parts)
        if lora is not None:
            parts += (AdapterPart("transformer", lora, 1.0, -1, field="extras.latent_upscale"),)
        if lora is not None or self.plain:
            if self.ctx.adapters is None:
                raise RuntimeError("the second stage's adapters need the model's adapter host (a model t2v loaded)")
            self.ctx.adapters.switch(parts)
        if self.conditions is not None and self.condition is None:  # resumed in stage 2: the same conditions
            _, self.condition = self.conditions(None, torch.Generator("cpu").manual_seed(0))  # (their noise unused)
        schedulers = (self.scheduler, copy.deepcopy(self.scheduler))
        mask = None
        if self.ctx.image is not None and self.first is None:  # stage 1's first latent frame, upscaled, kept
            keep = torch.zeros((1, 1, self.big.frames, self.big.height, self.big.width), device=self.model.plan.device)
            keep[:, :, 0] = 1.0
            mask = self.big.pack(keep).squeeze(-1)
        self.model_step = step_fn(self.model.components["transformer"], schedulers, self.big, self.audio, self.text,
                                  self.guidance, self.opts, self.fps, self.model.plan.device, mask, self.condition)


@memoized("ltx2-meta-upsamplers", 8)
def meta_upsampler(path: str):
    """The folder's latent upsampler built from its config on the meta device (no weights), None without one:
    the planner counts its weights and its pass over stage 1's latents."""
    import torch
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    if upsampler_scale(Path(path)) is None:
        return None
    with torch.device("meta"):
        return LTX2LatentUpsamplerModel.from_config(LTX2LatentUpsamplerModel.load_config(Path(path) / UPSAMPLER)).eval()
