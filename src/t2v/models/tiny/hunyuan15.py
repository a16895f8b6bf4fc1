"""Tiny random-weight HunyuanVideo 1.5 models in the exact ``hunyuanvideo-community/HunyuanVideo-1.5-*`` layout,
built offline.

``t2v models make-tiny --family hunyuan15 DIR``. The folder has what the hub repo has: ``model_index.json``
(``HunyuanVideo15Pipeline``), ``transformer/`` (``HunyuanVideo15Transformer3DModel``: the latents, the image
condition's latents and mask in, its token refiner, rotary axes), ``vae/`` (``AutoencoderKLHunyuanVideo15`` with
the real 16x spatial, 4x temporal compression), ``text_encoder/`` (a small ``Qwen2_5_VLTextModel``),
``tokenizer/`` (a byte-level ``Qwen2Tokenizer`` with the ChatML template the pipeline applies),
``text_encoder_2/`` + ``tokenizer_2/`` (the glyph encoder: a small ``T5EncoderModel`` and ``ByT5Tokenizer``),
``scheduler/`` (``FlowMatchEulerDiscreteScheduler``) and ``guider/`` (``ClassifierFreeGuidance``, scale 6). The
folder is a few hundred KB and builds in about a second.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_DIM, GLYPH_DIM, IMAGE_DIM, LATENT = 16, 32, 12, 8
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_hunyuan15(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """HunyuanVideo 1.5 text-to-video (``HunyuanVideo-1.5-480p_t2v`` layout)."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant)


def make_hunyuan15_i2v(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """HunyuanVideo 1.5 image-to-video (``HunyuanVideo-1.5-480p_i2v`` layout): a SigLIP ``image_encoder`` and its
    ``feature_extractor`` beside the text-to-video components."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant, i2v=True)


def tokenizer():
    """Qwen2's tokenizer class, byte level with no merges (one token per byte), ChatML special tokens and
    the chat template."""
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", model_max_length=131072)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def modules(tok, glyph_vocab: int, i2v: bool = False) -> dict:
    from diffusers import AutoencoderKLHunyuanVideo15, HunyuanVideo15Transformer3DModel
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, SiglipVisionConfig, SiglipVisionModel, T5Config
    from transformers import T5EncoderModel

    image = {"image_encoder": SiglipVisionModel(SiglipVisionConfig(
        hidden_size=IMAGE_DIM, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=28,
        patch_size=14))} if i2v else {}
    return {**image,
        "transformer": HunyuanVideo15Transformer3DModel(
            in_channels=2 * LATENT + 1, out_channels=LATENT, num_attention_heads=2, attention_head_dim=8, num_layers=2,
            num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=TEXT_DIM,
            text_embed_2_dim=GLYPH_DIM, image_embed_dim=IMAGE_DIM, rope_axes_dim=(2, 2, 4), target_size=64,
            task_type="i2v" if i2v else "t2v"),
        "vae": AutoencoderKLHunyuanVideo15(
            in_channels=3, out_channels=3, latent_channels=LATENT, block_out_channels=(8, 16, 16, 16, 16),
            layers_per_block=1, spatial_compression_ratio=16, temporal_compression_ratio=4),
        "text_encoder": Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
            hidden_size=TEXT_DIM, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
            rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            rope_theta=1000000.0, vocab_size=len(tok), bos_token_id=None, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id)),
        "text_encoder_2": T5EncoderModel(T5Config(
            vocab_size=glyph_vocab, d_model=GLYPH_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")),
    }


INDEX = {"guider": ["diffusers", "ClassifierFreeGuidance"], "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
         "text_encoder": ["transformers", "Qwen2_5_VLTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
         "tokenizer": ["transformers", "Qwen2Tokenizer"], "tokenizer_2": ["transformers", "ByT5Tokenizer"],
         "transformer": ["diffusers", "HunyuanVideo15Transformer3DModel"], "vae": ["diffusers", "AutoencoderKLHunyuanVideo15"]}


def build(out: Path, *, seed: int = 0, fp16_variant: bool = True, i2v: bool = False) -> Path:
    """Write the tiny model (``i2v``: the image-to-video layout) at ``out`` and return the folder."""
    import diffusers
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok, glyph_tok = tokenizer(), ByT5Tokenizer()
    tok.save_pretrained(out / "tokenizer")
    glyph_tok.save_pretrained(out / "tokenizer_2")
    for name, module in modules(tok, len(glyph_tok), i2v).items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    FlowMatchEulerDiscreteScheduler(shift=5.0).save_pretrained(out / "scheduler")
    ClassifierFreeGuidance(guidance_scale=6.0).save_pretrained(out / "guider")
    index = {"_class_name": "HunyuanVideo15ImageToVideoPipeline" if i2v else "HunyuanVideo15Pipeline",
             "_diffusers_version": diffusers.__version__, **INDEX}
    if i2v:
        from transformers import SiglipImageProcessor

        SiglipImageProcessor(size={"height": 28, "width": 28}).save_pretrained(out / "feature_extractor")
        index.update(image_encoder=["transformers", "SiglipVisionModel"],
                     feature_extractor=["transformers", "SiglipImageProcessor"])
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    defaults = {"width": 64, "height": 48, "num_frames": 9, "fps": 24, "guidance_scale": 6.0, "num_inference_steps": 4,
                "scheduler": "model", "negative_prompt": ""}
    (out / "t2v.json").write_text(json.dumps({"family": "hunyuan15", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny HunyuanVideo15Pipeline model at %s", out)
    return out
