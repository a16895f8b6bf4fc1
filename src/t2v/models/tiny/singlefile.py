"""A tiny model's component written as the single files people download: the original key layout (Wan's own
repository names, as ``wan2.1_t2v_1.3B_bf16.safetensors`` has them; ComfyUI's under ``model.diffusion_model.``),
float8 with per-tensor scales (``scale_weight``, as Kijai's "scaled" files), and GGUF (``Q8_0``, ``Q4_0``, as the
``gguf`` package quantizes them). The tests load these over the tiny folder and compare frames with the folder's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: diffusers' Wan names -> the original repository's (the inverse of diffusers' converter), in order
WAN_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("attn2", "cross_attn"),
    ("attn1", "self_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    (".add_k_proj.", ".k_img."),
    (".add_v_proj.", ".v_img."),
    (".norm_added_k.", ".norm_k_img."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
)


def wan_original(state: dict[str, Any], *, comfy: bool = False) -> dict[str, Any]:
    """A Wan transformer's diffusers state dict under the original repository's names (``comfy``: ComfyUI's)."""
    out = {}
    for name, t in state.items():
        new = name
        for a, b in WAN_ORIGINAL:
            new = new.replace(a, b)
        if new == "scale_shift_table":
            new = "head.modulation"
        new = new.replace(".scale_shift_table", ".modulation")
        new = new.replace(".norm2.", ".norm__swap.").replace(".norm3.", ".norm2.").replace(".norm__swap.", ".norm3.")
        out[("model.diffusion_model." if comfy else "") + new] = t.contiguous()
    return out


def fp8_scaled(state: dict[str, Any]) -> dict[str, Any]:
    """Every 2-D+ ``.weight`` as float8_e4m3fn with a per-tensor ``scale_weight`` (amax / 448), the rest as is,
    plus ComfyUI's ``scaled_fp8`` marker."""
    import torch

    out: dict[str, Any] = {"scaled_fp8": torch.zeros(2, dtype=torch.float8_e4m3fn)}
    for name, t in state.items():
        if name.endswith(".weight") and t.dim() >= 2:
            scale = (t.float().abs().max() / 448.0).clamp(min=1e-12)
            out[name] = (t.float() / scale).to(torch.float8_e4m3fn)
            out[name[: -len("weight")] + "scale_weight"] = scale.reshape(1)
        else:
            out[name] = t
    return out


def write_safetensors(state: dict[str, Any], path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def quantize_q4_k(data):
    """``data`` (rows of a multiple of 256 values) packed as ggml's Q4_K blocks: per 256 values an fp16 scale and
    min, eight 6-bit sub-block scales and mins, and 4-bit values (the ``gguf`` package reads K-quants but
    cannot write them). Each 32-value sub-block maps 0..15 onto [min, max] of its values."""
    import numpy as np

    x = data.astype(np.float32).reshape(-1, 8, 32)  # blocks x sub-blocks x values
    mins = np.maximum(-x.min(axis=2), 0.0)
    scales = (x.max(axis=2) + mins) / 15.0
    d = scales.max(axis=1) / 63.0
    dmin = mins.max(axis=1) / 63.0
    d, dmin = d.astype(np.float16), dmin.astype(np.float16)
    df, dminf = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    sc = np.clip(np.round(np.divide(scales, df, out=np.zeros_like(scales), where=df > 0)), 0, 63).astype(np.uint8)
    mn = np.clip(np.round(np.divide(mins, dminf, out=np.zeros_like(mins), where=dminf > 0)), 0, 63).astype(np.uint8)
    step = (df * sc)[:, :, None]
    q = np.clip(np.round(np.divide(x + (dminf * mn)[:, :, None], step, out=np.zeros_like(x), where=step > 0)),
                0, 15).astype(np.uint8)
    packed = np.zeros((x.shape[0], 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    packed[:, 4:8] = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:] & 0xF) | ((mn[:, 4:] & 0xF) << 4)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(x.shape[0], 128)  # sub-blocks 2c and 2c+1 share bytes
    blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), packed, qs], axis=1)
    return blocks.reshape(*data.shape[:-1], data.shape[-1] // 256 * 144)


def write_gguf(state: dict[str, Any], path: Path, quant: str = "Q8_0", arch: str = "wan") -> Path:
    """The tensors as a GGUF file: 2-D+ weights whose rows the block size divides quantized to ``quant``,
    the rest in F32 (as city96's files keep norms and biases)."""
    import gguf
    import numpy as np

    kind = getattr(gguf.GGMLQuantizationType, quant)
    block = gguf.GGML_QUANT_SIZES[kind][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    for name, t in state.items():
        data = t.detach().float().numpy()
        if t.dim() >= 2 and data.shape[-1] % block == 0:
            packed = quantize_q4_k(data) if quant == "Q4_K" else gguf.quants.quantize(data, kind)
            writer.add_tensor(name, packed, raw_dtype=kind)
        else:
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
