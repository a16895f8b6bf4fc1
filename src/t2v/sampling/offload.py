"""Offload for the ``low`` memory plan: model CPU offload (:func:`resident`: a component sits on the device only
while it runs) and diffusers' block-level group offload (:func:`group_offload`: one block at a time), for a
diffusers transformer and for a text encoder alike (:func:`block_path`: where its repeated blocks are)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from t2v.models.deferred import Deferred

GROUP_OFFLOADED = "t2v_group_offloaded"  # set on a transformer whose blocks diffusers' hooks move


@contextmanager
def resident(module, device: str, offload: bool):
    """With ``offload``, keep ``module`` on ``device`` only inside the block (model CPU offload); a module whose
    blocks stream (:func:`group_offload`) is left where it is: diffusers' hooks move it."""
    if module is None or not offload or device == "cpu" or group_offloaded(module):
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
    """diffusers' block-level group offloading on the named components (each block moved to ``device`` only
    while it runs; the rest of the module as one group), marked so the loop does not move the whole module as
    well. On a CUDA device a diffusers model's transfers are streamed: the next block is copied from pinned CPU
    memory on a side stream while this one computes (:func:`offload_options`). A diffusers model streams the
    lists of blocks that are its own children; any other module (a transformers text encoder: UMT5's
    ``encoder.block``, Llama's ``model.layers``) the lists held by the module :func:`block_path` finds."""
    for name in names:
        value = dict.get(components, name)
        if isinstance(value, Deferred):  # a text encoder loaded when a prompt is first encoded: streamed then
            components[name] = Deferred(name, lambda d=value: stream_blocks(d.get(), device))
        elif value is not None:
            stream_blocks(value, device)


def stream_blocks(module, device: str):
    """:func:`group_offload` on one module (once); returns it."""
    import torch

    if module is None or group_offloaded(module):
        return module
    options = dict(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                   offload_type="block_level", num_blocks_per_group=1)
    if hasattr(module, "enable_group_offload"):
        module.enable_group_offload(**options, **offload_options(device))
    else:
        # A text encoder runs once per prompt: its blocks are copied as they are reached, without the side stream
        # (a whole-module move copies the same bytes without overlap either), which keeps diffusers' prefetching
        # out of the nested groups a transformers model's layout makes and pins no second copy of its weights.
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(module, block_modules=list(block_path(module)) or None, **options)
    setattr(module, GROUP_OFFLOADED, True)
    return module


def block_path(module) -> tuple[str, ...]:
    """The child names leading from ``module`` to the module that holds its largest list of repeated blocks
    (a ``ModuleList`` / ``Sequential`` of one class, by parameters): () when the list is the module's own child, or for a
    diffusers model (whose group offload streams its own children's lists). What :func:`group_offload` streams
    and what the planner counts as streamed (:func:`t2v.families.meta.blocks`) both follow it."""
    import torch

    if hasattr(module, "enable_group_offload"):
        return ()
    best, size = (), 0
    for name, sub in module.named_modules():
        if name and isinstance(sub, (torch.nn.ModuleList, torch.nn.Sequential)) and len(sub) > 1 \
                and len({type(block) for block in sub}) == 1:  # repeated blocks, not a Linear-GELU-Linear head
            n = sum(p.numel() for p in sub.parameters())
            if n > size:
                best, size = tuple(name.split("."))[:-1], n
    return best


def offload_options(device: str) -> dict[str, bool]:
    """Streamed transfers (a CUDA side stream, pinned memory, non-blocking copies) on CUDA; plain copies
    elsewhere (the CPU and Apple GPUs have no such streams)."""
    streamed = str(device).startswith("cuda")
    return {"use_stream": streamed, "record_stream": streamed, "non_blocking": streamed}


def group_offloaded(module) -> bool:
    """Whether diffusers' hooks already move ``module``'s blocks (the loop then leaves the module where it is)."""
    return bool(getattr(module, GROUP_OFFLOADED, False))
