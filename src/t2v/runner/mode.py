"""What each kind of request (its ``mode``) takes and how it is checked before anything loads.

A :class:`Mode` says which model a request of its kind gets when it names none, which of the request's options it
takes (the family's own settings, speed options, input images, longer videos, post-processing), whether the
planner chooses its memory plan, and refuses what it does not take (:meth:`Mode.check`). The modes are listed once
in :data:`MODES`; :func:`mode_of` looks a request's up, so the resolver and the runner read its attributes and
never compare mode names. How each mode runs is registered beside it in :mod:`t2v.runner.modes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2v.errors import InvalidRequest

# The speed options and their "off" values: what a mode without speed options must leave them at.
SPEED_OPTIONS = (("cache", None), ("compile", False), ("weights", "auto"), ("text_encoder_weights", "auto"),
                 ("attention", "auto"))


@dataclass(frozen=True)
class Mode:
    """One kind of request.

    ``default_model``: the :class:`~t2v.settings.Settings` field naming the model used when the request names
    none (None: the request names a source, not a model). ``takes_family_settings``: a few-step preset and the
    family's own ``extras``. ``takes_speed_options``: step caches, compile, weights and attention kernels (and
    the server's defaults for them). ``takes_inputs``: an input image and a motion adapter. ``takes_long``:
    ``seconds``, ``prompt_schedule`` and ``extend``. ``takes_post``: a ``post`` block. ``plans_memory``: the
    planner chooses a memory plan before loading. ``takes_source``: the request works on a clip made before (a
    job's video or an uploaded one: ``job`` or ``asset``) and runs no model. ``count_field``: the field that says
    how many frames (or images) the request makes, what its cost is counted in.
    """

    name: str
    default_model: str | None = None
    takes_family_settings: bool = False
    takes_speed_options: bool = False
    takes_inputs: bool = False
    takes_long: bool = False
    takes_post: bool = False
    plans_memory: bool = False
    takes_source: bool = False
    count_field: str = "num_frames"

    def default_model_of(self, settings: Any) -> str | None:
        """The model a request of this mode gets from ``settings`` when it names none."""
        return getattr(settings, self.default_model) if self.default_model else None

    def check_adapter(self, adapter: str | None) -> None:
        """Refuse a motion adapter this mode does not take (InvalidRequest naming ``motion_adapter``)."""
        if adapter is not None and not self.takes_inputs:
            raise InvalidRequest(f"motion_adapter: a motion adapter makes videos; {self.name} mode takes a "
                                 "text-to-image model", field="motion_adapter")

    def check(self, resolved: Any) -> None:
        """Refuse, in the resolved request, what this mode does not take (InvalidRequest naming the field)."""
        if not self.takes_inputs and getattr(resolved, "image", None):
            raise InvalidRequest("image: only video requests take an input image (image-to-video)", field="image")
        if not self.takes_long and getattr(resolved, "is_long", False):
            raise InvalidRequest("seconds: only video requests make longer videos (seconds, prompt_schedule, extend); "
                                 "a sequence takes keyframes", field="seconds")
        if not self.takes_speed_options:
            for name, off in SPEED_OPTIONS:
                if getattr(resolved, name, off) != off:
                    raise InvalidRequest(f"{name}: only video requests take speed options yet; leave it at {off}",
                                         field=name)
        if not self.takes_post and getattr(resolved, "post", None) is not None:
            raise InvalidRequest("post: post-processing is for videos (video and sequence requests); leave it out",
                                 field="post")


VIDEO = Mode("video", default_model="default_model", takes_family_settings=True, takes_speed_options=True,
             takes_inputs=True, takes_long=True, takes_post=True, plans_memory=True)
SEQUENCE = Mode("sequence", default_model="default_image_model", takes_post=True)
IMAGE = Mode("image", default_model="default_image_model", count_field="count")
POST = Mode("post", takes_post=True, takes_source=True)

MODES: dict[str, Mode] = {mode.name: mode for mode in (VIDEO, SEQUENCE, IMAGE, POST)}


def mode_of(request: Any) -> Mode:
    """The :class:`Mode` of ``request`` (InvalidRequest naming ``mode`` for one t2v does not know)."""
    name = getattr(request, "mode", None)
    mode = MODES.get(name) if isinstance(name, str) else None
    if mode is None:
        raise InvalidRequest(f"mode: unknown {name!r}; choose one of: {', '.join(MODES)}", field="mode")
    return mode
