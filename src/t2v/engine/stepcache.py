"""Step caches (placeholder: being written)."""

from __future__ import annotations

from contextlib import contextmanager

from t2v.engine.options import cache_spec
from t2v.errors import InvalidRequest


def check(family, request, *, model: str = "this model") -> None:
    spec = cache_spec(getattr(request, "cache", None))
    if spec is not None and spec.name not in family.caches:
        offered = ", ".join(family.caches) or "none"
        raise InvalidRequest(f"cache: {model} ({family.name}) cannot use the {spec.name} step cache; it takes: {offered}",
                             field="cache")


@contextmanager
def applied(family, model, request, ctx):
    yield model
