"""Tiny random-weight LTX-2 models in the exact ``Lightricks/LTX-2`` diffusers layout, built offline.

``t2v models make-tiny --family ltx2 DIR``. The folder has what the hub repo's diffusers folders have:
``model_index.json`` (``LTX2Pipeline``), ``transformer/`` (``LTX2VideoTransformer3DModel``: the video and audio
streams with their cross-attention), ``vae/`` (``AutoencoderKLLTX2Video`` with the real 32x spatial, 8x temporal
compression: patch 4, then spatial, temporal and two space-time stages), ``audio_vae/``
(``AutoencoderKLLTX2Audio``: 16 kHz mel spectrograms, 160-sample hop, 4x mel and time compression),
``vocoder/`` (``LTX2Vocoder``: mel frames to 24 kHz stereo, 240 samples per frame as the real one),
``connectors/`` (``LTX2TextConnectors``), ``text_encoder/`` (a small ``Gemma3ForConditionalGeneration``),
``tokenizer/`` (a ``GemmaTokenizer`` of single characters with byte fallback: no vocabulary to download) and
``scheduler/`` (``FlowMatchEulerDiscreteScheduler`` with LTX's dynamic shifting), and for the two-stage path
``latent_upsampler/`` (a spatial x2 ``LTX2LatentUpsamplerModel``) and a distilled LoRA for stage 2 at the top
(``distilled-lora.safetensors``, named by ``stage_2_lora`` in ``t2v.json``).

The latent statistics of both autoencoders are set to values that are not the identity, so normalising is
exercised. The folder is about 1 MB and builds in about a second.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_DIM = 32  # the tiny Gemma's hidden size = the connectors' and transformer's caption_channels
TEXT_LAYERS = 2
LATENT = 8  # video latent channels
AUDIO_LATENT, MEL_BINS = 2, 16  # audio latent channels, mel bins (the audio VAE compresses them 4x)
SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
STAGE_2_LORA = "distilled-lora.safetensors"  # at the top of the folder, as the hub repo keeps its distilled LoRA


def make_ltx2(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """LTX-2 layout: ``LTX2Pipeline`` with sound (text-to-video and audio)."""
    return build(Path(out), seed=seed, fp16_variant=fp16_variant)


def tokenizer():
    """Gemma's tokenizer class over a vocabulary of single characters (byte fallback for the rest)."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    vocab.update({f"<0x{b:02X}>": len(SPECIAL) + b for b in range(256)})
    for c in ["▁", *(chr(i) for i in range(33, 127))]:
        vocab.setdefault(c, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=1024)


def text_encoder(vocab_size: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=dict(vocab_size=vocab_size, hidden_size=TEXT_DIM, intermediate_size=32,
                         num_hidden_layers=TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                         max_position_embeddings=2048, sliding_window=64),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4))


def transformer():
    from diffusers import LTX2VideoTransformer3DModel

    return LTX2VideoTransformer3DModel(
        in_channels=LATENT, out_channels=LATENT, patch_size=1, patch_size_t=1, num_attention_heads=2,
        attention_head_dim=8, cross_attention_dim=16, audio_in_channels=AUDIO_LATENT * MEL_BINS // 4,
        audio_out_channels=AUDIO_LATENT * MEL_BINS // 4, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=2, qk_norm="rms_norm_across_heads", caption_channels=TEXT_DIM,
        rope_double_precision=False, rope_type="split", audio_sampling_rate=16000, audio_hop_length=160)


def connectors():
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    return LTX2TextConnectors(
        caption_channels=TEXT_DIM, text_proj_in_factor=TEXT_LAYERS + 1, video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8, video_connector_num_layers=1, video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None, connector_rope_base_seq_len=32, rope_theta=10000.0,
        rope_double_precision=False, causal_temporal_positioning=False, rope_type="split")


def vae():
    import torch
    from diffusers import AutoencoderKLLTX2Video

    model = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=LATENT, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False, spatial_compression_ratio=32,
        temporal_compression_ratio=8)
    with torch.no_grad():
        model.latents_mean.copy_(torch.linspace(-0.2, 0.2, LATENT))
        model.latents_std.copy_(torch.linspace(0.5, 1.5, LATENT))
    return model


def audio_vae():
    import torch
    from diffusers import AutoencoderKLLTX2Audio

    model = AutoencoderKLLTX2Audio(
        base_channels=AUDIO_LATENT * MEL_BINS // 4, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None, in_channels=2,
        resolution=32, latent_channels=AUDIO_LATENT, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=MEL_BINS)
    with torch.no_grad():
        n = model.latents_mean.numel()
        model.latents_mean.copy_(torch.linspace(-0.1, 0.1, n))
        model.latents_std.copy_(torch.linspace(0.8, 1.2, n))
    return model


def vocoder():
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    return LTX2Vocoder(in_channels=2 * MEL_BINS, hidden_channels=32, out_channels=2, upsample_kernel_sizes=[12, 10, 16],
                       upsample_factors=[6, 5, 8], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
                       leaky_relu_negative_slope=0.1, output_sampling_rate=24000)


def latent_upsampler():
    """A spatial x2 ``LTX2LatentUpsamplerModel`` (the hub repos' ``latent_upsampler/``) on the tiny latents."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    return LTX2LatentUpsamplerModel(in_channels=LATENT, mid_channels=32, num_blocks_per_stage=1, dims=3,
                                    spatial_upsample=True, temporal_upsample=False, rational_spatial_scale=2.0)


def stage_two_lora(transformer_module, out: Path) -> None:
    """A random rank-2 LoRA on the transformer's attention in diffusers' format (``transformer.`` keys), as the
    repo's distilled LoRA for stage 2 is."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    module = copy.deepcopy(transformer_module)
    module.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                  init_lora_weights=False))
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_B" in name:
                p.mul_(0.5)  # a visible but moderate change
    state = {f"transformer.{k}": v.contiguous() for k, v in get_peft_model_state_dict(module).items()}
    save_file(state, str(out))


def scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # The LTX-2 repo's scheduler config: LTX's dynamic shifting.
    return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                           base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)


INDEX = {"audio_vae": ["diffusers", "AutoencoderKLLTX2Audio"], "connectors": ["ltx2", "LTX2TextConnectors"],
         "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
         "text_encoder": ["transformers", "Gemma3ForConditionalGeneration"], "tokenizer": ["transformers", "GemmaTokenizer"],
         "transformer": ["diffusers", "LTX2VideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLLTX2Video"],
         "vocoder": ["ltx2", "LTX2Vocoder"]}


def build(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """Write the tiny LTX-2 model at ``out`` and return the folder."""
    import diffusers
    import torch

    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok = tokenizer()
    tok.save_pretrained(out / "tokenizer")
    modules = {"text_encoder": text_encoder(len(tok)), "transformer": transformer(), "connectors": connectors(),
               "vae": vae(), "audio_vae": audio_vae(), "vocoder": vocoder()}
    for name, module in modules.items():
        if fp16_variant:  # first, so the fp32 save below leaves config.json saying float32
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name, safe_serialization=True, variant="fp16")
        module.save_pretrained(out / name, safe_serialization=True)
    scheduler().save_pretrained(out / "scheduler")
    latent_upsampler().save_pretrained(out / "latent_upsampler", safe_serialization=True)
    stage_two_lora(modules["transformer"], out / STAGE_2_LORA)
    index = {"_class_name": "LTX2Pipeline", "_diffusers_version": diffusers.__version__, **INDEX}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    # A short clip at the real 32x / 8x grid; the tiny transformer has 2 blocks, so STG perturbs the last.
    defaults = {"width": 64, "height": 64, "num_frames": 9, "fps": 24, "guidance_scale": 3.0,
                "num_inference_steps": 4, "scheduler": "model", "negative_prompt": "", "stg_blocks": [1],
                "stage_2_lora": STAGE_2_LORA}
    (out / "t2v.json").write_text(json.dumps({"family": "ltx2", "defaults": defaults}, indent=2) + "\n")
    logger.info("built tiny LTX2Pipeline model at %s", out)
    return out
