"""The memory plans a run may use (``speed``, ``balanced``, ``low``): what each trades for memory."""

from __future__ import annotations

from dataclasses import dataclass

from t2v.errors import InvalidRequest
from t2v.requests.options import PLANS


@dataclass(frozen=True)
class MemoryPlan:
    name: str
    vae_chunk: int  # frames per VAE decode call (0: all at once)
    forward_chunking: bool  # UNet feed-forward chunking (GPU only)
    offload: bool  # GPU: move each component to the device only while it runs
    free_text_encoder: bool

    def uses_forward_chunking(self, device: str) -> bool:
        """On the CPU, chunking the feed-forward token by token halves the speed and, through allocator churn,
        raises peak RSS rather than lowering it (measured on the tiny and the full-size model): GPU only."""
        return self.forward_chunking and not device.startswith("cpu")


MEMORY_PLANS = {
    "speed": MemoryPlan("speed", vae_chunk=0, forward_chunking=False, offload=False, free_text_encoder=False),
    "balanced": MemoryPlan("balanced", vae_chunk=4, forward_chunking=True, offload=False, free_text_encoder=False),
    "low": MemoryPlan("low", vae_chunk=1, forward_chunking=True, offload=True, free_text_encoder=True),
}


def get_plan(name: str) -> MemoryPlan:
    if name not in MEMORY_PLANS:
        raise InvalidRequest(f"unknown memory plan {name!r}; choose one of: {', '.join(PLANS)}", field="memory")
    return MEMORY_PLANS[name]
