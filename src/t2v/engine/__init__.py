"""Denoising engines, one per model family, behind one small interface (see :mod:`t2v.engine.base`)."""

from t2v.engine.base import Engine, StepCallback, engine_for, register_engine

__all__ = ["Engine", "StepCallback", "engine_for", "register_engine"]
