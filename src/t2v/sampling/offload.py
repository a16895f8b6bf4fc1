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
    while it runs), marked so the loop does not move the whole module as well. On a CUDA device the transfers
    are streamed: the next block is copied from pinned CPU memory on a side stream while this one computes
    (:func:`offload_options`)."""
    import torch

    for name in names:
        module = components.get(name)
        if module is not None:
            module.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                        offload_type="block_level", num_blocks_per_group=1, **offload_options(device))
            setattr(module, GROUP_OFFLOADED, True)


def offload_options(device: str) -> dict[str, bool]:
    """Streamed transfers (a CUDA side stream, pinned memory, non-blocking copies) on CUDA; plain copies
    elsewhere (the CPU and Apple GPUs have no such streams)."""
    streamed = str(device).startswith("cuda")
    return {"use_stream": streamed, "record_stream": streamed, "non_blocking": streamed}


def group_offloaded(module) -> bool:
    """Whether diffusers' hooks already move ``module``'s blocks (the loop then leaves the module where it is)."""
    return bool(getattr(module, GROUP_OFFLOADED, False))
