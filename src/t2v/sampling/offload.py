"""Offload for the ``low`` memory plan: model CPU offload (:func:`resident`: a component sits on the device only
while it runs) and diffusers' block-level group offload (:func:`group_offload`: one block at a time)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

GROUP_OFFLOADED = "t2v_group_offloaded"  # set on a transformer whose blocks diffusers' hooks move


@contextmanager
def resident(module, device: str, offload: bool):
    """With ``offload``, keep ``module`` on ``device`` only inside the block (model CPU offload)."""
    if module is None or not offload or device == "cpu":
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to("cpu")
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def group_offload(components: dict[str, Any], device: str, names: tuple[str, ...] = ("transformer", "transformer_2")) -> None:
    """diffusers' block-level group offloading on the transformers (each block moved to ``device`` only
    while it runs), marked so the loop does not move the whole module as well."""
    import torch

    for name in names:
        module = components.get(name)
        if module is not None:
            module.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                        offload_type="block_level", num_blocks_per_group=1)
            setattr(module, GROUP_OFFLOADED, True)


def group_offloaded(module) -> bool:
    """Whether diffusers' hooks already move ``module``'s blocks (the loop then leaves the module where it is)."""
    return bool(getattr(module, GROUP_OFFLOADED, False))
