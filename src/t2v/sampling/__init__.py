"""Building blocks the families' loops share: checkpoints, schedulers, offload, CLIP text, VAE decode."""

from t2v.sampling.base import CheckpointSpec, EngineRun, StepCallback

__all__ = ["CheckpointSpec", "EngineRun", "StepCallback"]
