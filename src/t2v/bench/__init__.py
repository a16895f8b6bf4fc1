"""Benchmarks that ship with t2v: the same request through stock diffusers and through t2v, side by side.

``t2v bench`` runs :func:`t2v.bench.cpu.compare` on a tiny model; ``benchmarks/bench_cpu.py`` runs it on the
full-size one. Each run is a fresh ``python -m t2v.bench.worker`` subprocess, so its peak memory is its own.
Nothing here is imported by the rest of the library.
"""

from __future__ import annotations

PROMPT = "a panda surfing on a big ocean wave at sunset"
NUM_FRAMES = 8
STEPS = 2
SEED = 0
GUIDANCE = 9.0
FPS = 8
FULL_SIZE = 256
# The tiny model's VAE scales by 4, not 8: at 256x256 its latents would be 64x64 (4096 tokens per frame in
# self-attention), slower than the point of a quick comparison. 64x64 gives it 16x16 latents.
SMALL_SIZE = 64
STAGES = ("load", "text_encode", "denoise", "decode", "encode", "other")


def request_fields(size: int) -> dict:
    """The request both sides make, at ``size`` x ``size`` pixels."""
    return dict(num_frames=NUM_FRAMES, width=size, height=size, num_inference_steps=STEPS, seed=SEED, guidance_scale=GUIDANCE)
