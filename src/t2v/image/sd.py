"""Stable Diffusion building blocks for image mode: encode text, denoise (txt2img or img2img), decode.

t2v steps through its one loop (:mod:`t2v.sampling.loop`, as video does) so every mode gets per-step progress,
cancellation between steps, seeded CPU noise (same image on every device), and the predicted clean image at any
step (the denoise grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.text import encode_prompt
from t2v.sampling.loop import Hooks, LoopState, denoise as denoise_loop
from t2v.sampling.vae import decode_latents, decode_chunk, to_uint8

if TYPE_CHECKING:
    import torch

    from t2v.models.loader import LoadedModel


def vae_factor(model: LoadedModel) -> int:
    return 2 ** (len(model.vae.config.block_out_channels) - 1)


def text_embeddings(model: LoadedModel, prompt: str, warnings: list[str], *, negative: bool = False):
    """The conditioning for ``prompt``: a (1, tokens, dim) tensor, or for SDXL a (hidden, pooled) pair.

    SDXL (as diffusers does it): the penultimate hidden states of both text encoders side by side, and the
    second encoder's pooled projection; an empty negative prompt is all zeros.
    """
    if model.text_encoder_2 is None:
        return encode_prompt(model, prompt, warnings)
    import torch

    hidden, pooled = [], None
    with torch.inference_mode():
        for tok, enc in ((model.tokenizer, model.text_encoder), (model.tokenizer_2, model.text_encoder_2)):
            ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
            out = enc(ids.to(model.plan.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]
    h = torch.cat(hidden, dim=-1).float()
    if negative and not prompt:
        return torch.zeros_like(h), torch.zeros_like(pooled.float())
    return h, pooled.float()


def lerp(a, b, t: float):
    """Linear interpolation of two conditionings (tensors, or SDXL (hidden, pooled) pairs)."""
    if isinstance(a, tuple):
        return tuple(lerp(x, y, t) for x, y in zip(a, b))
    return (1 - t) * a + t * b


def seeded_noise(model: LoadedModel, seed: int, height: int, width: int):
    """(1, C, h, w) standard normal noise from a CPU generator (fp32), moved to the model's device/dtype."""
    import torch

    f = vae_factor(model)
    shape = (1, model.unet.config.in_channels, height // f, width // f)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)
    return noise.to(model.plan.device)


def slerp(a, b, t: float, eps: float = 1e-7):
    """Spherical interpolation between two noise tensors (keeps the norm a Gaussian sample has)."""
    import torch

    af, bf = a.flatten().double(), b.flatten().double()
    cos = torch.clamp(torch.dot(af, bf) / (af.norm() * bf.norm() + eps), -1.0, 1.0)
    theta = torch.arccos(cos)
    if theta.abs() < 1e-4:
        return (1 - t) * a + t * b
    s = torch.sin(theta)
    return ((torch.sin((1 - t) * theta) / s) * a.double() + (torch.sin(t * theta) / s) * b.double()).to(a.dtype)


@dataclass
class Denoised:
    latents: "torch.Tensor"
    x0: dict[int, "torch.Tensor"] = field(default_factory=dict)  # step -> predicted clean latents
    steps_run: int = 0


def img2img_steps(steps: int, strength: float) -> int:
    """Denoising steps an img2img frame runs (diffusers' rule: ``int(steps * strength)``, at least 1)."""
    return max(1, min(steps, int(steps * strength)))


def denoise(model: LoadedModel, cond, uncond, noise, *, steps: int, guidance: float, scheduler: str,
            init_latents=None, strength: float = 1.0, capture: tuple[int, ...] = (),
            on_step: Callable[[], None] = lambda: None, should_cancel: Callable[[], bool] = lambda: False) -> Denoised:
    """Run the sampler from ``noise`` (txt2img) or from ``init_latents`` noised to ``strength`` (img2img).

    ``capture`` lists 1-based steps whose predicted clean latents (x0) are kept for the denoise grid.
    """
    import torch

    device = model.plan.device
    sched = make_scheduler(scheduler, model.scheduler_config)
    sched.set_timesteps(steps, device=device)
    timesteps = sched.timesteps
    if init_latents is not None and strength < 1.0:
        run = img2img_steps(steps, strength)
        start = steps - run
        timesteps = timesteps[start * sched.order :]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start * sched.order)
        latents = sched.add_noise(init_latents, noise, timesteps[:1])
    else:
        latents = noise * sched.init_noise_sigma
    do_cfg = guidance > 1.0
    added = None
    if isinstance(cond, tuple):  # SDXL: pooled text embeddings + size/crop ids as added conditioning
        (cond, pooled), (uncond, u_pooled) = cond, uncond
        pooled = torch.cat([u_pooled, pooled]) if do_cfg else pooled
        h, w = noise.shape[-2] * vae_factor(model), noise.shape[-1] * vae_factor(model)
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32, device=device).repeat(pooled.shape[0], 1)
        added = {"text_embeds": pooled.to(model.unet.dtype), "time_ids": time_ids.to(model.unet.dtype)}
    embeds = torch.cat([uncond, cond]) if do_cfg else cond
    dtype = model.unet.dtype
    out = Denoised(latents)
    alphas = sched.alphas_cumprod.to(device) if hasattr(sched, "alphas_cumprod") else None

    def step(i: int, state: LoopState) -> None:
        t, latents = timesteps[i], state.latents
        inp = torch.cat([latents] * 2) if do_cfg else latents
        inp = sched.scale_model_input(inp, t)
        pred = model.unet(inp.to(dtype), t, encoder_hidden_states=embeds.to(dtype), added_cond_kwargs=added).sample.float()
        if do_cfg:
            p_uncond, p_cond = pred.chunk(2)
            pred = p_uncond + guidance * (p_cond - p_uncond)
        result = sched.step(pred, t, latents)
        if (i + 1) in capture:
            x0 = getattr(result, "pred_original_sample", None)
            if x0 is None and alphas is not None:
                a = alphas[int(t)]
                if sched.config.get("prediction_type", "epsilon") == "v_prediction":
                    x0 = a.sqrt() * latents - (1 - a).sqrt() * pred
                else:
                    x0 = (latents - (1 - a).sqrt() * pred) / a.sqrt()
            if x0 is not None:
                out.x0[i + 1] = x0.detach().clone()
        state.latents = result.prev_sample
        out.steps_run += 1

    state = LoopState(latents)
    hooks = Hooks(on_step=lambda done, total, latents: on_step(), should_cancel=should_cancel)
    with torch.inference_mode():
        denoise_loop(hooks, len(timesteps), state, step, before_decode=False)
    out.latents = state.latents
    return out


def decode(model: LoadedModel, latents) -> np.ndarray:
    """(N, C, h, w) latents -> (N, H, W, 3) uint8."""
    video = latents.permute(1, 0, 2, 3).unsqueeze(0)  # (1, C, N, h, w): the video decoder's layout
    chunk = decode_chunk(0, latents.shape[0], model.plan.device)
    return to_uint8(decode_latents(model.vae, video, chunk=chunk))


def encode_image(model: LoadedModel, image: np.ndarray):
    """(H, W, 3) uint8 -> (1, C, h, w) scaled latents (the posterior mean: deterministic)."""
    import torch

    x = torch.from_numpy(np.array(image)).float().div(127.5).sub(1.0).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        lat = model.vae.encode(x.to(model.plan.device, model.vae.dtype)).latent_dist.mean
    return lat.float() * model.vae.config.scaling_factor


def camera(image: np.ndarray, *, zoom: float = 1.0, pan_x: float = 0.0, pan_y: float = 0.0, rotate: float = 0.0) -> np.ndarray:
    """Deforum-style 2D camera move of one frame: zoom about the centre, rotate, pan; edges reflected."""
    if zoom == 1.0 and pan_x == 0.0 and pan_y == 0.0 and rotate == 0.0:
        return image
    from PIL import Image

    h, w = image.shape[:2]
    ph, pw = h // 2, w // 2
    padded = np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode="reflect")
    img = Image.fromarray(padded).rotate(rotate, resample=Image.BICUBIC, translate=(pan_x, pan_y))
    cw, ch = (w + 2 * pw) / 2, (h + 2 * ph) / 2
    half_w, half_h = w / (2 * zoom), h / (2 * zoom)
    box = (cw - half_w, ch - half_h, cw + half_w, ch + half_h)
    return np.asarray(img.resize((w, h), Image.BICUBIC, box=box))
