"""Tiny random-weight AnyFlow models in the ``nvidia/AnyFlow-Wan2.1-T2V-*-Diffusers`` layout, built offline.

``t2v models make-tiny --family anyflow DIR``: ``model_index.json`` (``AnyFlowPipeline``), ``transformer/``
(``AnyFlowTransformer3DModel``: Wan 2.1's blocks with a second, target timestep), ``vae/`` (``AutoencoderKLWan``),
``text_encoder/`` (a small ``UMT5EncoderModel``), ``tokenizer/`` (``ByT5Tokenizer``) and ``scheduler/``
(``FlowMapEulerDiscreteScheduler``, shift 5): Wan's tiny parts (:mod:`t2v.models.tiny.wan`) with AnyFlow's
transformer and scheduler. A few hundred KB.
"""

from __future__ import annotations

from pathlib import Path

from t2v.models.tiny import save_folder
from t2v.models.tiny.wan import HEAD_DIM, HEADS, PARTS_INDEX, TEXT_DIM, wan_parts

INDEX = {**PARTS_INDEX, "scheduler": ["diffusers", "FlowMapEulerDiscreteScheduler"],
         "transformer": ["diffusers", "AnyFlowTransformer3DModel"]}


def make_anyflow(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """AnyFlow on Wan 2.1, text-to-video."""
    from diffusers import AnyFlowTransformer3DModel, FlowMapEulerDiscreteScheduler

    out, modules = wan_parts(out, seed, lambda: AnyFlowTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=16, out_channels=16,
        text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, rope_max_seq_len=32))
    defaults = {"width": 64, "height": 32, "num_frames": 9, "fps": 16, "guidance_scale": 1.0, "num_inference_steps": 4,
                "scheduler": "model", "negative_prompt": ""}
    return save_folder(out, modules, FlowMapEulerDiscreteScheduler(shift=5.0), pipeline="AnyFlowPipeline", index=INDEX,
                       family="anyflow", defaults=defaults, fp16_variant=fp16_variant)


def make_anyflow_far(out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """AnyFlow FAR on Wan 2.1 (``AnyFlowFARPipeline``): the causal transformer with a compressed branch for the
    chunks it attends back to, chunks of 1, 2 and 2 latent frames (17 frames)."""
    from diffusers import AnyFlowFARTransformer3DModel, FlowMapEulerDiscreteScheduler

    out, modules = wan_parts(out, seed, lambda: AnyFlowFARTransformer3DModel(
        patch_size=(1, 2, 2), compressed_patch_size=(1, 4, 4), full_chunk_limit=2, num_attention_heads=HEADS,
        attention_head_dim=HEAD_DIM, in_channels=16, out_channels=16, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32,
        num_layers=2, cross_attn_norm=True, rope_max_seq_len=32, chunk_partition=(1, 2, 2)))
    defaults = {"width": 64, "height": 64, "num_frames": 17, "fps": 16, "guidance_scale": 1.0, "num_inference_steps": 4,
                "scheduler": "model", "negative_prompt": ""}
    index = {**INDEX, "transformer": ["diffusers", "AnyFlowFARTransformer3DModel"]}
    return save_folder(out, modules, FlowMapEulerDiscreteScheduler(shift=5.0), pipeline="AnyFlowFARPipeline",
                       index=index, family="anyflow", defaults=defaults, fp16_variant=fp16_variant)
