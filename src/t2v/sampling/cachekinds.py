"""What a step cache is: a small registered object (:data:`t2v.sampling.stepcache.KINDS`) with its own checks
and how it attaches to the run's private view of the denoiser. t2v's own caches attach an object to the view
(``attach``: :mod:`t2v.sampling.deepcache`); diffusers' caches are hooks enabled on each guidance branch's view
(``hooked``, ``config``: :mod:`t2v.sampling.hookcaches`)."""

from __future__ import annotations

from typing import Any

from t2v.requests import CacheSpec


class CacheKind:
    """One step cache, by its request name (:data:`t2v.requests.CACHES`)."""

    name: str = ""
    hooked: bool = False  # a diffusers hook on each guidance branch's view (else ``attach`` on the view)

    def check(self, spec: CacheSpec) -> None:
        """Refuse parameters that cannot work together (InvalidRequest naming ``cache``)."""

    def attach(self, view: Any, params: dict[str, Any]) -> Any:
        """t2v's own caches: the cache object the view carries (the loop tells it each step)."""
        raise NotImplementedError(f"{self.name} is a hooked cache")

    def ratios(self, model: Any, request: Any) -> dict[str, list[float]]:
        """Per-transformer data the cache needs before it starts ({}: none)."""
        return {}

    def config(self, branches: Any, view: Any, batch: int) -> Any:
        """Hooked caches: the diffusers cache config for one branch's ``view`` (``branches``: the run's
        dispatcher, with the step's timestep, the family and the ratios)."""
        raise NotImplementedError(f"{self.name} is not a hooked cache")
