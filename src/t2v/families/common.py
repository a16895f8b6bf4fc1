"""Folder facts and memory habits the transformer families (Wan, LTX-Video, CogVideoX, HunyuanVideo, ...) share.

The loop they step through is :mod:`t2v.sampling.loop`; offload is :mod:`t2v.sampling.offload`; the planner's
meta-device modules are :mod:`t2v.families.meta`; diffusers-format LoRA is :mod:`t2v.families.lora`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from t2v.families.base import Family
from t2v.models.catalog import config
from t2v.models.loader import forget


class GroupOffload(Family):
    """A transformer family: its transformers and its text encoder stream under the low plan on an accelerator
    (weights kept on the CPU): one block on the device at a time (a transformer's next one copied ahead on a side
    stream), which the planner counts so (:attr:`Family.streamed`)."""

    streamed: ClassVar[tuple[str, ...]] = ("transformer", "transformer_2", "text_encoder")


def free_text_encoders(model, memory, names: tuple[str, ...] = ("text_encoder",)) -> None:
    """Under a plan that frees the text encoders once the prompt is encoded: drop them from this run's
    components and the model from the cache (the next run loads it again; this one needs the memory now)."""
    if memory.free_text_encoder:
        forget(model)
        for name in names:
            model.components[name] = None


def scheduler_min_steps(path: Path | None) -> int:
    """Fewest steps the folder's scheduler can run: 2 when it stretches its sigmas to ``shift_terminal`` (LTX's
    FlowMatchEuler: with one sigma the stretch divides by zero, in stock diffusers too), else 1. Without a
    folder, 2: the published LTX configs set it."""
    if path is None:
        return 2
    return 2 if config(path, "scheduler", "scheduler_config.json").get("shift_terminal") else 1
