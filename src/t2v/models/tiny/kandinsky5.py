"""Tiny random-weight Kandinsky 5.0 Video models in the exact ``kandinskylab/Kandinsky-5.0-T2V-*-Diffusers`` layout,
built offline.

``t2v models make-tiny --family kandinsky5 DIR``. The folder has what the hub repo has: ``model_index.json``
(``Kandinsky5T2VPipeline``), ``transformer/`` (``Kandinsky5Transformer3DModel`` with the visual condition's
channels, channels-last latents, 3-axis rotary positions), ``vae/`` (``AutoencoderKLHunyuanVideo``, 8x spatial,
4x temporal, 16 latent channels), ``text_encoder/`` (a small ``Qwen2_5_VLForConditionalGeneration`` with its
vision tower), ``tokenizer/`` (the processor's files: a byte-level Qwen2 tokenizer with the ChatML template and
the Qwen2-VL image processor's config), ``text_encoder_2/`` + ``tokenizer_2/`` (CLIP) and ``scheduler/``
(``FlowMatchEulerDiscreteScheduler``). The tokenizer is byte level with one added token over the start of the
system prompt, so the template before the prompt is 128 tokens, as the pipeline's crop expects of the real one.
A few hundred KB.
"""

from __future__ import annotations

from pathlib import Path

from t2v.models.tiny import hunyuan15, make_tokenizer, save_folder
from t2v.models.tiny.hunyuan import clip_text_encoder, vae

TEXT_DIM, LATENT = 16, 16  # Qwen's hidden size (the transformer's in_text_dim), the VAE's latent channels
CROP = 128  # the system prompt's tokens the pipeline crops (prompt_template_encode_start_idx)

INDEX = {"scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
         "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
         "text_encoder_2": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "Qwen2VLProcessor"],
         "tokenizer_2": ["transformers", "CLIPTokenizer"], "transformer": ["diffusers", "Kandinsky5Transformer3DModel"],
         "vae": ["diffusers", "AutoencoderKLHunyuanVideo"]}


def make_kandinsky5(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Kandinsky 5.0 Video Lite text-to-video (``Kandinsky-5.0-T2V-Lite-sft-5s-Diffusers`` layout)."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant)


def make_kandinsky5_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Kandinsky 5.0 Video image-to-video (``Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers`` layout: the same components,
    ``Kandinsky5I2VPipeline``); 17 frames by default, so that the first four latent frames have later ones to be
    normalised against."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant, i2v=True)


def make_kandinsky5_nabla(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Kandinsky 5.0 Video with sparse NABLA attention (``Kandinsky-5.0-T2V-Pro-sft-10s-Diffusers``'s attention
    settings: top-CDF 0.9 with the sliding-tile windows), at 256x256 by default: NABLA's mask is made of
    8x8-token tiles, so the patched latent must span at least two of them a side."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant, nabla=True)


def tokenizer():
    """hunyuan15's byte-level Qwen2 tokenizer, with the start of the stock system prompt added as one token so
    that the template's text before the prompt is ``CROP`` tokens."""
    from diffusers import Kandinsky5T2VPipeline as Stock
    from transformers import AddedToken

    tok = hunyuan15.tokenizer()
    template = Stock(**dict.fromkeys(INDEX, None)).prompt_template
    prefix = template.split("{}")[0]
    start = len("<|im_start|>")
    chunk = prefix[start:start + len(tok(prefix).input_ids) - CROP + 1]
    tok.add_tokens([AddedToken(chunk, normalized=False, special=False)])
    assert len(tok(prefix).input_ids) == CROP, len(tok(prefix).input_ids)
    return tok


def qwen(tok):
    """A two-layer Qwen2.5-VL with a one-block vision tower (the hub's class, scaled down)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = {"hidden_size": TEXT_DIM, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 2, "rope_theta": 1000000.0, "vocab_size": len(tok),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "bos_token_id": None, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    vision = {"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": TEXT_DIM}
    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, vocab_size=len(tok), image_token_id=len(tok) - 1,
        video_token_id=len(tok) - 1, vision_start_token_id=len(tok) - 1, vision_end_token_id=len(tok) - 1))


NABLA = {"attention_type": "nabla", "attention_P": 0.9, "attention_wT": 11, "attention_wH": 3, "attention_wW": 3,
         "attention_add_sta": True, "attention_method": "topcdf"}  # the 10 s models' transformer config


def transformer(clip_dim: int, nabla: bool = False):
    """The transformer, scaled down. Its modulation layers start at zero (every block's gates closed, so the
    output would not depend on the prompt): here they get small random weights, as a trained model has."""
    import torch
    from diffusers import Kandinsky5Transformer3DModel

    model = Kandinsky5Transformer3DModel(
        in_visual_dim=LATENT, out_visual_dim=LATENT, in_text_dim=TEXT_DIM, in_text_dim2=clip_dim, time_dim=32,
        patch_size=(1, 2, 2), model_dim=48, ff_dim=96, num_text_blocks=1, num_visual_blocks=2, axes_dims=(8, 8, 8),
        visual_cond=True, **(NABLA if nabla else {}))
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.2)
    return model


def build(out: Path, *, seed: int = 0, fp16_variant: bool = True, i2v: bool = False, nabla: bool = False) -> Path:
    """Write the tiny model (``i2v``: the image-to-video pipeline) at ``out`` and return the folder."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok = tokenizer()
    tok.save_pretrained(out / "tokenizer")
    Qwen2VLImageProcessorPil().save_pretrained(out / "tokenizer")  # the processor's image half, as the hub has it
    clip_tok = make_tokenizer(out / "tokenizer_2")
    clip = clip_text_encoder(clip_tok)
    modules = {"transformer": transformer(clip.config.hidden_size, nabla), "vae": vae(), "text_encoder": qwen(tok),
               "text_encoder_2": clip}
    side = {"width": 256, "height": 256} if nabla else {"width": 64, "height": 48}
    defaults = {**side, "num_frames": 17 if i2v else 9, "fps": 24, "guidance_scale": 5.0, "num_inference_steps": 4,
                "scheduler": "model", "negative_prompt": "static, blurry"}
    return save_folder(out, modules, FlowMatchEulerDiscreteScheduler(shift=5.0), index=INDEX, family="kandinsky5",
                       pipeline="Kandinsky5I2VPipeline" if i2v else "Kandinsky5T2VPipeline", defaults=defaults,
                       fp16_variant=fp16_variant)
