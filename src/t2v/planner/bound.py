"""An upper bound on a run's peak memory under the ``speed`` plan, from the folder's files alone: no model built.

A run far under the memory budget needs no dry run to choose its plan (:func:`t2v.planner.memory.choose`): when
this bound is at most :data:`FAR` of the budget, ``speed`` (the plan that holds the most) fits, whatever a dry run
would say. The bound is generous on purpose; it is never used to refuse a run or to pick a leaner plan.

Why it is above the peak the planner predicts for ``speed``:

- Weights: every tensor in every weight file of the folder's components (fp16 variants too, so counted twice when
  both are there) at 4 bytes a parameter, the widest a run holds them in (a half-precision run keeps some in fp32:
  an upcast VAE). Parameters are read from safetensors headers; other files count 2 parameters a byte (4-bit
  quantized at most).
- Activations, per component, added up (the stages run one at a time; the planner takes the largest): a
  component is at most as wide as its widest layer (:func:`width`: the largest width its config declares, times
  its largest multiplier, at least four for a feed-forward's hidden layer), and no tensor it makes has more
  positions than its input: the VAE decodes at most the clip's pixels, the denoiser works on the clip's latent
  positions (the pixels over the VAE's declared down-sampling squared; none declared: none assumed; patches and
  down-sampling blocks only lower them) plus the text's, a text encoder on its longest prompt: twice the prompt
  tokens the family takes (its template, glyph and image tokens fit in the other half), or where the family does
  not say, the positions its config declares. :data:`LIVE` such full-size
  tensors are counted alive at once (a UNet's skip connections, a block's input, its residual and the output being
  made), and the attention scores apart: ``batch x heads x tokens^2``, every position one token (full 3-D
  attention; a factored model attends to far fewer), heads at most ``width / 8`` (no head is narrower than 8).
- The rest as the planner counts it: the process's own memory before loading (CPU), its heap's slack, the decoded
  frames kept for export and the latents.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

FAR = 0.25  # the share of the budget under which a run's bound makes a dry run unnecessary
LIVE = 8  # full-size tensors counted alive at once
FF_MULT = 4  # a feed-forward's hidden width over its declared width
WEIGHT_EXTS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
LATENT_CHANNELS = 16  # at most, per latent position (a generous count for the latents term)
TEXT_TOKENS = 1024  # a text encoder's tokens when its config declares no limit
TEXT_MARGIN = 2  # the family's prompt tokens times this: room for a chat template, glyph and image tokens


def _components(path: Path) -> list[Path]:
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    named = [path / k for k, v in index.items() if isinstance(v, list) and not k.startswith("_")]
    return [p for p in named if p.is_dir()] or [p for p in path.iterdir() if p.is_dir()]


def _safetensors_params(file: Path) -> int:
    with file.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > file.stat().st_size:  # not a safetensors file (damaged): its size is counted instead
            raise ValueError(f"{file}: header size {size} is past the end of the file")
        header = json.loads(f.read(size))
    total = 0
    for name, info in header.items():
        if name != "__metadata__":
            n = 1
            for d in info.get("shape", ()):
                n *= int(d)
            total += n
    return total


def parameters(path: Path) -> int:
    """At least the parameters the folder's components hold (see the module's note)."""
    total = 0
    for component in _components(path):
        for file in component.rglob("*"):
            if not file.is_file() or not file.name.endswith(WEIGHT_EXTS):
                continue
            try:
                total += _safetensors_params(file) if file.suffix == ".safetensors" else 2 * file.stat().st_size
            except (OSError, ValueError, struct.error):
                total += 2 * file.stat().st_size
    return total


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [int(value)]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def _is_width(key: str) -> bool:
    return (key.endswith(("channels", "_dim", "hidden_size", "intermediate_size", "d_ff", "d_model"))
            or key in ("dim", "ffn_dim", "hidden_dim"))


def _configs(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for component in _components(path):
        try:
            data = json.loads((component / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out[component.name] = data
    return out


def width(config: dict[str, Any]) -> int:
    """At least the widest layer of a component: the largest width its config declares (channels, hidden and
    feed-forward sizes, heads x head size) times its largest multiplier (``dim_mult``, ``mlp_ratio``), at least
    :data:`FF_MULT`."""
    found, mults = [1], [FF_MULT]
    for k, v in config.items():
        if _is_width(k):
            found += _ints(v)
        elif k.endswith(("mult", "_ratio")):
            mults += _ints(v)
    heads, head_dim = _ints(config.get("num_attention_heads")), _ints(config.get("attention_head_dim"))
    if heads and head_dim:
        found.append(max(heads) * max(head_dim))
    return max(found) * max(mults)


def vae_scale(configs: dict[str, dict[str, Any]]) -> int:
    """The VAE's spatial down-sampling where its config declares its levels (``block_out_channels`` or
    ``dim_mult``), else 1."""
    vae = configs.get("vae", {})
    levels = _ints(vae.get("block_out_channels")) or _ints(vae.get("dim_mult"))
    return 2 ** (len(levels) - 1) if levels else 1


def _stage(positions: int, batch: int, wide: int) -> int:
    """Bytes of :data:`LIVE` full-size tensors and the attention scores of ``positions`` tokens (fp32)."""
    heads = max(wide // (8 * FF_MULT), 1)
    return LIVE * batch * positions * wide * 4 + batch * heads * positions * positions * 4


def text_positions(configs: dict[str, dict[str, Any]], text_tokens: int | None) -> int:
    """At least the tokens a text encoder or the denoiser's text stream holds: :data:`TEXT_MARGIN` times the prompt
    tokens the family takes (``text_tokens``) where it says, else the most any text encoder's config declares
    (:data:`TEXT_TOKENS` where none does)."""
    declared = max((n for name, c in configs.items() if "text_encoder" in name
                    for n in _ints(c.get("max_position_embeddings"))), default=TEXT_TOKENS)
    return min(declared, TEXT_MARGIN * text_tokens) if text_tokens else declared


def activations(path: Path, frames: int, height: int, width_px: int, batch: int, text_tokens: int | None = None) -> int:
    """Bytes (fp32) above the live activations of every stage at this shape, added up (see the module's note):
    the text encoders' at their longest prompt (:func:`text_positions`), the VAE's (and a vocoder's) at the clip's
    pixels, every other component's at the clip's latent positions and the text's (joint attention holds both)."""
    configs = _configs(path)
    scale = vae_scale(configs)
    latent = frames * max(height // scale, 1) * max(width_px // scale, 1)
    text = text_positions(configs, text_tokens)
    total = 0
    for name, config in configs.items():
        wide = width(config)
        if "text_encoder" in name:
            total += _stage(text, batch, wide)
        elif "vae" in name or "vocoder" in name:
            total += LIVE * frames * height * width_px * wide * 4
        else:
            total += _stage(latent + text, batch, wide)
    return total


def extras(frames: int, height: int, width: int, batch: int) -> int:
    """The decoded frames kept for export and the latents, in bytes."""
    return frames * height * width * 3 * 4 + batch * frames * height * width * LATENT_CHANNELS * 4
