"""The steps of an LTX-2 run (:mod:`t2v.families.ltx2`), each as ``LTX2Pipeline.__call__`` does it: the Gemma prompt
encoding (every layer's hidden states, stacked), the connectors, the video and audio noise, the shifted sigmas,
one guided step of both streams (classifier-free, spatio-temporal and modality-isolation guidance in the x0
form, with the guidance rescale), and the decode of the frames (video VAE) and the sound (audio VAE, then the
vocoder)."""

from __future__ import annotations

import dataclasses
from typing import Any

from t2v.models.precision import compute_dtype
from t2v.sampling.vae import video_uint8
from t2v.families.ltx_steps import Grid, decode_noise, normalize, stats

TEXT_TOKENS = 1024  # LTX2Pipeline's max_sequence_length
# What a model's defaults (ModelSpec / t2v.json) may set beyond the request fields, with LTX2Pipeline's defaults.
OPTIONS = {"audio_guidance_scale": 7.0, "stg_scale": 1.0, "audio_stg_scale": 1.0, "stg_blocks": [28],
           "modality_scale": 3.0, "audio_modality_scale": 3.0, "guidance_rescale": 0.7, "audio_guidance_rescale": 0.7,
           "decode_timestep": 0.0, "decode_noise_scale": None, "sigmas": None, "motion_speed": 1.0,
           "use_cross_timestep": True, "text_tokens": TEXT_TOKENS, "image_crf": None,
           # the two-stage path (t2v.families.ltx2_upscale): on or off, and the model folder's stage-2 LoRA file
           "latent_upscale": False, "stage_2_lora": None}


@dataclasses.dataclass(frozen=True)
class AudioGrid:
    """The audio latents of a clip: latent frames, channels, latent mel bins, and the audio VAE's rates."""

    frames: int
    channels: int
    mel_bins: int  # latent mel bins
    mel_bins_full: int

    @classmethod
    def of(cls, num_frames: int, fps: float, audio_vae) -> AudioGrid:
        cfg = audio_vae.config
        per_second = cfg.sample_rate / cfg.mel_hop_length / float(audio_vae.temporal_compression_ratio)
        return cls(round(num_frames / fps * per_second), cfg.latent_channels,
                   cfg.mel_bins // audio_vae.mel_compression_ratio, cfg.mel_bins)

    @staticmethod
    def pack(x):
        """(B, C, L, M) -> (B, L, C * M), as LTX2Pipeline._pack_audio_latents."""
        return x.transpose(1, 2).flatten(2, 3)

    def unpack(self, x):
        return x.unflatten(2, (-1, self.mel_bins)).transpose(1, 2)


@dataclasses.dataclass
class Text:
    """The connectors' video and audio prompt embeddings and mask, (negative, positive) rows with guidance."""

    video: Any
    audio: Any
    mask: Any

    def positive(self) -> Text:
        return Text(self.video.chunk(2)[1], self.audio.chunk(2)[1], self.mask.chunk(2)[1])


def gemma_embeds(model, prompt: str, tokens: int, warnings: list[str]):
    """LTX2Pipeline._get_gemma_prompt_embeds: left-padded ids through Gemma, every layer's hidden states stacked
    and flattened to (1, tokens, hidden * layers), and the attention mask."""
    import torch

    tok, encoder = model.components["tokenizer"], model.components["text_encoder"]
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompt = prompt.strip()
    inputs = tok([prompt], padding="max_length", max_length=tokens, truncation=True, add_special_tokens=True,
                 return_tensors="pt")
    full = tok([prompt], add_special_tokens=True).input_ids[0]
    if len(full) > tokens:
        warnings.append(f"prompt truncated to {tokens} tokens; dropped: {tok.decode(full[tokens:])!r}")
    out = encoder(input_ids=inputs.input_ids.to(encoder.device), attention_mask=inputs.attention_mask.to(encoder.device),
                  output_hidden_states=True)
    embeds = torch.stack(out.hidden_states, dim=-1).flatten(2, 3).to(compute_dtype(encoder))
    device = model.plan.device
    return embeds.to(device), inputs.attention_mask.to(device)


def connect(connectors, embeds, mask, padding_side: str) -> Text:
    """The text connectors on the (negative, positive) batch: the video and audio streams' prompt embeddings."""
    video, audio, connector_mask = connectors(embeds.to(connectors.dtype), mask.to(connectors.device),
                                              padding_side=padding_side)
    return Text(video, audio, connector_mask)


def noise(grid: Grid, audio: AudioGrid, channels: int, generator, device):
    """The packed video noise, then the packed audio noise, fp32, from the generator in that order."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    video = randn_tensor((1, channels, grid.frames, grid.height, grid.width), generator=generator,
                         device=torch.device(device), dtype=torch.float32)
    return grid.pack(video), audio_noise(audio, generator, device)


def audio_noise(audio: AudioGrid, generator, device, *, packed: bool = False):
    """The packed audio noise, fp32, from the generator: drawn over (channels, frames, mel bins) and packed, as
    LTX2Pipeline draws it, or drawn in the packed shape (``packed``), as LTX2ConditionPipeline does."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    dev = torch.device(device)
    if packed:
        return randn_tensor((1, audio.frames, audio.channels * audio.mel_bins), generator=generator, device=dev,
                            dtype=torch.float32)
    sound = randn_tensor((1, audio.channels, audio.frames, audio.mel_bins), generator=generator, device=dev,
                         dtype=torch.float32)
    return audio.pack(sound)


def image_latents(vae, image, grid: Grid, crf: int, dtype, device):
    """LTX2ImageToVideoPipeline's first frame: the image re-compressed as one H.264 frame at ``crf`` (as the model
    was trained; 0 skips it), resized, through the VAE (its mode), normalised, on every latent frame; and the
    conditioning mask (1 on the first latent frame). Both packed: (1, tokens, C), (1, tokens)."""
    import numpy as np
    import torch
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf
    from diffusers.video_processor import VideoProcessor
    from PIL import Image

    if crf:
        image = Image.fromarray(apply_image_conditioning_crf(np.array(image.convert("RGB")), crf))
    # LTX2ImageToVideoPipeline resizes bilinearly (stage 1 of the two-stage path makes the clip smaller than the image)
    processor = VideoProcessor(vae_scale_factor=grid.spatial, resample="bilinear")
    pixels = processor.preprocess(image, height=grid.height * grid.spatial, width=grid.width * grid.spatial)
    encoded = vae.encode(pixels.to(device=device, dtype=dtype).unsqueeze(2)).latent_dist.mode().to(torch.float32)
    init = normalize(vae, encoded).repeat(1, 1, grid.frames, 1, 1)
    mask = torch.zeros((1, 1, grid.frames, grid.height, grid.width), device=device, dtype=torch.float32)
    mask[:, :, 0] = 1.0
    return grid.pack(init), grid.pack(mask).squeeze(-1)


def timesteps(scheduler, steps: int, tokens: int, sigmas, device) -> None:
    """Linear sigmas (or the model's custom ones), shifted by the video token count as LTX2Pipeline shifts them."""
    import numpy as np
    from diffusers.pipelines.ltx2.pipeline_ltx2 import calculate_shift

    cfg = scheduler.config
    mu = calculate_shift(tokens, cfg.get("base_image_seq_len", 1024), cfg.get("max_image_seq_len", 4096),
                         cfg.get("base_shift", 0.95), cfg.get("max_shift", 2.05))
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps) if sigmas is None else sigmas, device=device, mu=mu)
    scheduler.set_begin_index(0)


@dataclasses.dataclass
class Guidance:
    """The guidance of both streams: scales for classifier-free (cfg), spatio-temporal (stg, at ``blocks``) and
    modality-isolation guidance, and the rescale; each term is on when its pipeline property is."""

    cfg: tuple[float, float]
    stg: tuple[float, float]
    modality: tuple[float, float]
    rescale: tuple[float, float]
    blocks: list[int] | None

    @classmethod
    def of(cls, guidance_scale: float, opts: dict[str, Any]) -> Guidance:
        # LTX2Pipeline: an audio value of None (or 0) falls back to the video one.
        audio = lambda key, video: opts[key] or video  # noqa: E731
        return cls((guidance_scale, audio("audio_guidance_scale", guidance_scale)),
                   (opts["stg_scale"], audio("audio_stg_scale", opts["stg_scale"])),
                   (opts["modality_scale"], audio("audio_modality_scale", opts["modality_scale"])),
                   (opts["guidance_rescale"], audio("audio_guidance_rescale", opts["guidance_rescale"])),
                   opts["stg_blocks"])

    @property
    def uses_cfg(self) -> bool:
        return max(self.cfg) > 1.0

    @property
    def uses_stg(self) -> bool:
        return max(self.stg) > 0.0

    @property
    def uses_modality(self) -> bool:
        return max(self.modality) > 1.0

    def passes(self) -> int:
        return (2 if self.uses_cfg else 1) + self.uses_stg + self.uses_modality


def step_fn(transformer, schedulers, grid: Grid, audio: AudioGrid, text: Text, guidance: Guidance, opts, fps: float,
            device, mask=None, condition=None):
    """One LTX2Pipeline step of both streams: (i, t, video latents, audio latents) -> the stepped pair. With an
    image's conditioning ``mask`` (LTX2ImageToVideoPipeline), the video tokens of the first frame get timestep 0
    and that frame is never stepped. With a ``condition`` (LTX2ConditionPipeline's conditions:
    :class:`t2v.families.ltx2_condition.Conditioned`), each token's timestep is scaled by one minus its
    conditioning strength, the keyframe tokens appended to the latents have their own positions, and the guided
    x0 is blended with the clean conditions by that strength before every token is stepped."""
    import torch
    from diffusers.pipelines.ltx2.pipeline_ltx2 import rescale_noise_cfg
    from diffusers.pipelines.ltx2.utils import conditioning_frame_rate

    video_scheduler, audio_scheduler = schedulers
    rate = conditioning_frame_rate(fps, opts["motion_speed"])
    rows = 2 if guidance.uses_cfg else 1
    video_coords = transformer.rope.prepare_video_coords(1, grid.frames, grid.height, grid.width, device, fps=rate)
    if condition is not None and condition.coords is not None:  # the keyframes' positions after the clip's
        video_coords = torch.cat([video_coords, condition.coords], dim=2)
    audio_coords = transformer.audio_rope.prepare_audio_coords(1, audio.frames, device)
    single = text.positive() if guidance.uses_cfg else text
    dtype = text.video.dtype
    token_mask = mask if condition is None else condition.mask.squeeze(-1)

    attention = None if condition is None else condition.attention

    def forward(latents, sound, t, txt, coords, batch, **extra):
        timestep = t.expand(batch)
        if attention is not None:  # a reference attended to at less than full strength, or where a mask says
            extra["video_self_attention_mask"] = attention.expand(batch, -1, -1)
        if token_mask is not None:  # per-token video timesteps; the sound keeps the step's
            extra["audio_timestep"] = timestep
            video_timestep = timestep.unsqueeze(-1) * (1 - torch.cat([token_mask] * batch))
        else:
            video_timestep = timestep
        video, audio_ = transformer(
            hidden_states=latents.to(dtype), audio_hidden_states=sound.to(dtype), encoder_hidden_states=txt.video,
            audio_encoder_hidden_states=txt.audio, timestep=video_timestep, sigma=timestep, encoder_attention_mask=txt.mask,
            audio_encoder_attention_mask=txt.mask, num_frames=grid.frames, height=grid.height, width=grid.width,
            fps=rate, audio_num_frames=audio.frames, video_coords=coords[0], audio_coords=coords[1],
            perturbation_mask=None, use_cross_timestep=opts["use_cross_timestep"], return_dict=False, **extra)
        return video.float(), audio_.float()

    def x0(sample, velocity, i, scheduler):
        return sample - velocity * scheduler.sigmas[i]

    def step(i: int, t, latents, sound):
        both = tuple(c.repeat((rows,) + (1,) * (c.ndim - 1)) for c in (video_coords, audio_coords))
        v, a = forward(torch.cat([latents] * rows), torch.cat([sound] * rows), t, text, both, rows,
                       isolate_modalities=False, spatio_temporal_guidance_blocks=None)
        deltas_v, deltas_a = [], []
        if guidance.uses_cfg:
            (v_u, v), (a_u, a) = v.chunk(2), a.chunk(2)
            v, v_u = x0(latents, v, i, video_scheduler), x0(latents, v_u, i, video_scheduler)
            a, a_u = x0(sound, a, i, audio_scheduler), x0(sound, a_u, i, audio_scheduler)
            deltas_v.append((guidance.cfg[0] - 1) * (v - v_u))
            deltas_a.append((guidance.cfg[1] - 1) * (a - a_u))
        else:
            v, a = x0(latents, v, i, video_scheduler), x0(sound, a, i, audio_scheduler)
        for on, scales, extra in ((guidance.uses_stg, guidance.stg, dict(
                isolate_modalities=False, spatio_temporal_guidance_blocks=guidance.blocks)),
                (guidance.uses_modality, guidance.modality, dict(isolate_modalities=True,
                                                                 spatio_temporal_guidance_blocks=None))):
            if not on:
                continue
            pv, pa = forward(latents, sound, t, single, (video_coords, audio_coords), 1, **extra)
            pv, pa = x0(latents, pv, i, video_scheduler), x0(sound, pa, i, audio_scheduler)
            stg = extra["spatio_temporal_guidance_blocks"] is not None
            deltas_v.append((scales[0] if stg else scales[0] - 1) * (v - pv))
            deltas_a.append((scales[1] if stg else scales[1] - 1) * (a - pa))
        guided_v, guided_a = v, a
        for dv, da in zip(deltas_v, deltas_a):  # added one by one, in the stock order (cfg, stg, modality)
            guided_v, guided_a = guided_v + dv, guided_a + da
        if guidance.rescale[0] > 0:
            guided_v = rescale_noise_cfg(guided_v, v, guidance_rescale=guidance.rescale[0])
        if guidance.rescale[1] > 0:
            guided_a = rescale_noise_cfg(guided_a, a, guidance_rescale=guidance.rescale[1])
        if condition is not None:  # in x0 space: the conditions by their strength
            guided_v = (guided_v * (1 - condition.mask) + condition.clean * condition.mask).to(guided_v.dtype)
        v = (latents - guided_v) / video_scheduler.sigmas[i]
        a = (sound - guided_a) / audio_scheduler.sigmas[i]
        if mask is None:
            stepped = video_scheduler.step(v, t, latents, return_dict=False)[0]
        else:  # the image's frame is kept
            v, x = grid.unpack(v), grid.unpack(latents)
            stepped = grid.pack(torch.cat([x[:, :, :1], video_scheduler.step(v[:, :, 1:], t, x[:, :, 1:],
                                                                             return_dict=False)[0]], dim=2))
        return stepped, audio_scheduler.step(a, t, sound, return_dict=False)[0]

    return step


def decode_video(vae, latents, dtype, opts, generator, device):
    """LTX2Pipeline's decode: cast to the prompt embeddings' dtype, mix in the decode noise at the decode timestep
    (timestep-conditioned VAEs, noise from the generator), denormalise, decode; (F, H, W, 3) floats in [0, 1]."""
    from diffusers.video_processor import VideoProcessor

    latents, timestep = decode_noise(vae, latents.to(dtype), opts, generator, device)
    mean, std = stats(vae, latents)
    latents = latents * std / vae.config.scaling_factor + mean
    video = vae.decode(latents.to(vae.device, vae.dtype), timestep, return_dict=False)[0]
    return video_uint8(VideoProcessor(vae_scale_factor=vae.spatial_compression_ratio), video)


def decode_audio(audio_vae, vocoder, sound, audio: AudioGrid):
    """Denormalise the packed audio latents, unpack, decode to a mel spectrogram and vocode: ((channels, n) float32
    samples, the vocoder's sample rate)."""
    mean = audio_vae.latents_mean.to(sound.device, sound.dtype)
    std = audio_vae.latents_std.to(sound.device, sound.dtype)
    latents = audio.unpack(sound * std + mean).to(audio_vae.device, audio_vae.dtype)
    mel = audio_vae.decode(latents, return_dict=False)[0]
    samples = vocoder(mel.to(vocoder.device, vocoder.dtype))
    return samples[0].float().cpu().numpy(), int(vocoder.config.output_sampling_rate)
