"""Model CPU offload for the ``low`` memory plan: a component sits on the device only while it runs."""

from __future__ import annotations

from contextlib import contextmanager


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
