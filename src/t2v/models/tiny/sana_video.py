"""Tiny random-weight SANA-Video models in the ``Efficient-Large-Model/SANA-Video_2B_*_diffusers`` layout, built
offline.

``t2v models make-tiny --family sana-video DIR`` (480p: Wan 2.1's VAE) or ``--family sana-video-720p`` (LTX-2's
VAE, 32x spatial and 8x temporal, unpatched tokens). The folder has what the hub repo has: ``model_index.json``
(``SanaVideoPipeline``), ``transformer/`` (``SanaVideoTransformer3DModel``: linear self-attention, cross-attention
to the prompt, Wan's rotary positions), ``vae/``, ``text_encoder/`` (a small ``Gemma2Model``), ``tokenizer/`` (a
``GemmaTokenizer`` of single characters with byte fallback: no vocabulary to download) and ``scheduler/``
(``DPMSolverMultistepScheduler``, DPM-Solver++ on flow sigmas, shift 8, as the repos configure it). A few hundred
KB.
"""

from __future__ import annotations

from pathlib import Path

from t2v.models.tiny import ltx2, save_folder, wan

TEXT_DIM = 32  # the tiny Gemma's hidden size = the transformer's caption_channels

INDEX = {"scheduler": ["diffusers", "DPMSolverMultistepScheduler"], "text_encoder": ["transformers", "Gemma2Model"],
         "tokenizer": ["transformers", "GemmaTokenizer"], "transformer": ["diffusers", "SanaVideoTransformer3DModel"]}


def make_sana_video(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """SANA-Video 480p (Wan 2.1's VAE), text- and image-to-video."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant)


def make_sana_video_720p(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """SANA-Video 720p (LTX-2's VAE: 8k+1 frames, sizes a multiple of 32, one token per latent pixel)."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant, ltx2_vae=True)


def tokenizer():
    """LTX-2's tiny Gemma tokenizer, long enough for the pipeline's prompt instruction (over a thousand characters)."""
    tok = ltx2.tokenizer()
    tok.model_max_length = 8192
    return tok


def text_encoder(vocab_size: int):
    from transformers import Gemma2Config, Gemma2Model

    return Gemma2Model(Gemma2Config(vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=32,
                                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                    max_position_embeddings=4096, sliding_window=4096))


def transformer(in_channels: int, patch: tuple[int, int, int]):
    from diffusers import SanaVideoTransformer3DModel

    return SanaVideoTransformer3DModel(
        in_channels=in_channels, out_channels=in_channels, num_attention_heads=2, attention_head_dim=12, num_layers=2,
        num_cross_attention_heads=2, cross_attention_head_dim=12, cross_attention_dim=24, caption_channels=TEXT_DIM,
        mlp_ratio=2.5, sample_size=30, patch_size=patch)


def build(out: Path, *, seed: int = 0, fp16_variant: bool = True, ltx2_vae: bool = False) -> Path:
    """Write the tiny model (``ltx2_vae``: the 720p layout) at ``out`` and return the folder."""
    import torch
    from diffusers import DPMSolverMultistepScheduler

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok = tokenizer()
    tok.save_pretrained(out / "tokenizer")
    vae = ltx2.vae() if ltx2_vae else wan.vae(wan.WAN21)
    channels = ltx2.LATENT if ltx2_vae else 16
    modules = {"transformer": transformer(channels, (1, 1, 1) if ltx2_vae else (1, 2, 2)), "vae": vae,
               "text_encoder": text_encoder(len(tok))}
    vae_class = "AutoencoderKLLTX2Video" if ltx2_vae else "AutoencoderKLWan"
    defaults = {"width": 64, "height": 64 if ltx2_vae else 32, "num_frames": 9, "fps": 16, "guidance_scale": 6.0,
                "num_inference_steps": 4, "scheduler": "model", "negative_prompt": ""}
    scheduler = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", flow_shift=8.0, prediction_type="flow_prediction",
                                            use_flow_sigmas=True)
    return save_folder(out, modules, scheduler, pipeline="SanaVideoPipeline", index={**INDEX, "vae": ["diffusers", vae_class]},
                       family="sana-video", defaults=defaults, fp16_variant=fp16_variant)
