"""Attention kernels and compiled blocks (placeholder: being written)."""

from __future__ import annotations

from t2v.errors import InvalidRequest


def check(family, request, *, model: str = "this model") -> None:
    if getattr(request, "compile", False):
        raise InvalidRequest("compile: not available yet", field="compile")
    if getattr(request, "attention", "auto") not in ("auto", "sdpa"):
        raise InvalidRequest("attention: only auto and sdpa are available yet", field="attention")


def apply(family, model, request):
    return model
