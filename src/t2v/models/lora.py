"""LoRA adapters on the UNet's attention layers, in PEFT's format.

An adapter folder holds ``adapter_config.json`` (a ``peft.LoraConfig``), ``adapter_model.safetensors``
(the LoRA A/B matrices) and ``t2v_lora.json`` (base model, rank, data, steps). ``t2v train-lora``
writes one; ``t2v generate --lora DIR:S`` loads it, unfused, beside the base UNet (:mod:`t2v.models.adapters`).

Optionally the folder has a ``decoder/`` subfolder, itself a PEFT adapter folder, for the autoencoder's
decoder (``t2v train-lora --refine-steps``): it is loaded beside the base VAE the same way.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest

TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]  # spatial and temporal attention, self and cross
# With ``conv`` (LoCon): also every ResNet's 2D convolutions and the UNet's first and last convolution, as a
# regular expression PEFT matches against whole module names (keeps the temporal Conv3d stacks out).
ATTENTION = r"\.to_q|\.to_k|\.to_v|\.to_out\.0"
CONV = r"resnets\.\d+\.conv[12]"
CONV_TARGETS = rf".*({ATTENTION}|{CONV})|conv_in|conv_out"
# Not under a UNet3D's temporal attention: the first temporal transformer and every block's ``temp_attentions``.
SPATIAL = r"^(?!.*(temp_attentions|transformer_in))"
# The autoencoder's decoder: every convolution and attention projection under ``decoder.``, and post_quant_conv.
DECODER_TARGETS = r"decoder\..*(\.conv1|\.conv2|\.conv|conv_in|conv_out|conv_shortcut|\.to_q|\.to_k|\.to_v|\.to_out\.0)|post_quant_conv"
DECODER = "decoder"  # subfolder of an adapter folder
ADAPTER = "t2v"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
META = "t2v_lora.json"


def _peft():
    try:
        import peft
    except ImportError:  # pragma: no cover - peft is a dependency
        raise InvalidRequest("lora: LoRA needs the 'peft' package: pip install peft", field="lora") from None
    return peft


def check_lora(path: str | Path) -> Path:
    """The adapter folder at ``path``, or InvalidRequest naming what is wrong with it."""
    shown = str(path) if len(str(path)) <= 120 else str(path)[:117] + "..."
    try:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise InvalidRequest(f"lora: {shown} is not a folder", field="lora")
        for name in (CONFIG, WEIGHTS):
            if not (folder / name).is_file():
                raise InvalidRequest(f"lora: {shown} is not a LoRA adapter folder: it has no {name}", field="lora")
        return folder.resolve()
    except InvalidRequest:
        raise
    except (OSError, ValueError, RuntimeError) as e:  # a name no file can have (too long, NUL), ~unknown user
        raise InvalidRequest(f"lora: {shown} cannot be used as a folder name ({type(e).__name__})", field="lora") from None


def decoder_adapter(folder: Path) -> Path | None:
    """The adapter's ``decoder/`` part, if it has one."""
    sub = folder / DECODER
    return sub if (sub / CONFIG).is_file() and (sub / WEIGHTS).is_file() else None


def adapter_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for part in filter(None, (folder, decoder_adapter(folder))):
        for name in (CONFIG, WEIGHTS):
            h.update((part / name).read_bytes())
    return h.hexdigest()[:16]


def unet_targets(conv: bool = False, temporal: bool = True) -> str | list[str]:
    """PEFT's ``target_modules`` for a UNet adapter: every attention projection, with ``conv`` the ResNet
    convolutions and conv_in/conv_out too, and without ``temporal`` none of the temporal attention's layers."""
    if temporal:
        return CONV_TARGETS if conv else TARGET_MODULES
    return SPATIAL + (CONV_TARGETS if conv else f".*({ATTENTION})")


def add_lora(model, rank: int, alpha: float | None = None, conv: bool = False, targets: str | list[str] | None = None,
             temporal: bool = True):
    """Inject fresh, trainable LoRA layers (rank ``rank``) into ``model`` (a UNet: :func:`unet_targets`, or with
    ``targets`` any module, e.g. a VAE with DECODER_TARGETS); freeze everything else."""
    peft = _peft()
    config = peft.LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=targets or unet_targets(conv, temporal),
                             init_lora_weights="gaussian")
    model.requires_grad_(False)
    peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return config


@contextmanager
def adapters_off(model):
    """Run ``model`` as its base (the injected LoRA layers bypassed) inside the block."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield model
    finally:
        for m in layers:
            m.enable_adapters(True)


def lora_parameters(unet) -> list:
    return [p for n, p in unet.named_parameters() if "lora_" in n]


def save_lora(unet, config, out: Path, meta: dict[str, Any]) -> Path:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()}
    save_file(state, out / WEIGHTS)
    config.save_pretrained(out)
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_adapter(module, folder: Path, name: str) -> None:
    """Load the adapter in ``folder`` into ``module`` (a UNet; a VAE, from a ``decoder/`` folder) under ``name``,
    unfused: :class:`t2v.models.adapters.AdapterHost` sets its strength and switches it on and off."""
    peft = _peft()
    from safetensors.torch import load_file

    config = peft.LoraConfig.from_pretrained(str(folder))
    state = load_file(folder / WEIGHTS)
    peft.inject_adapter_in_model(config, module, adapter_name=name)
    result = peft.set_peft_model_state_dict(module, state, adapter_name=name)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise ValueError(f"{len(missing)} of its tensors have no layer here")
    module.requires_grad_(False)
