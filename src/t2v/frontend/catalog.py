"""The model picker both apps show, from ``GET /v1/models`` (a :class:`t2v.contract.ModelList`): each model's
label (what it makes, whether it is here or its download size, its GPU memory and licence), the menu grouped by
task with the server's model first, and one sentence on a model that is not here. No UI toolkit here."""

from __future__ import annotations

from typing import Any

#: The groups of the menu, in order: the first of a model's tasks that names one decides its group.
TASK_GROUPS = (("t2v", "video"), ("i2v", "image-to-video"), ("image", "image"))


def group_of(model) -> int:
    """The index in :data:`TASK_GROUPS` of what ``model`` makes (video, image-to-video only, images)."""
    tasks = list(getattr(model, "tasks", None) or ["t2v"])
    return next((i for i, (task, _) in enumerate(TASK_GROUPS) if task in tasks), len(TASK_GROUPS) - 1)


def state_of(model, downloads: bool) -> str:
    """"ready", or what Generate would do about a model that is not here."""
    if getattr(model, "present", None) is not False:  # here (or a server too old to say)
        return "ready"
    size = f"{model.download_gb:g} GB" if model.download_gb else "size unknown"
    return f"downloads at first use, {size}" if downloads else f"not downloaded, {size}"


def model_label(model, downloads: bool = False, *, default: bool = False) -> str:
    """One line for the menu: ``id · video · ready · ~8.2 GB VRAM · Apache-2.0`` (the server's own model:
    ``id · this server's model · ready``)."""
    parts = [model.id, "this server's model" if default else TASK_GROUPS[group_of(model)][1], state_of(model, downloads)]
    if not default:
        if model.vram_gb:
            parts.append(f"~{model.vram_gb:g} GB VRAM")
        if model.license:
            parts.append(model.license.split(" (")[0])
    return " · ".join(parts)


def model_menu(models) -> list[tuple[str, str]]:
    """(label, model id) for each model of ``models`` (a :class:`t2v.contract.ModelList`): the server's model
    first, then by task (video, image-to-video, image), the ones that are here first in each group."""
    downloads = bool(getattr(models, "downloads", False))
    items = list(models.items)
    own = next((m for m in items if m.id == models.default or models.default in (m.aliases or ())), None)
    rest = sorted((m for m in items if m is not own),
                  key=lambda m: (group_of(m), getattr(m, "present", None) is False))  # (stable: registry order)
    head = [(model_label(own, downloads, default=True), own.id)] if own is not None else []
    return head + [(model_label(m, downloads), m.id) for m in rest]


def model_note(model, downloads: bool = False) -> str:
    """One sentence on ``model`` when it is not here (what the first Generate does, or why it cannot run); ""
    when it runs here."""
    if model is None or getattr(model, "present", None) is not False:
        return ""
    size = f" ({model.download_gb:g} GB)" if model.download_gb else ""
    if downloads:
        return f"{model.id} is not on this server yet: the first Generate downloads it{size}."
    return (f"{model.id} is not downloaded on this server{size}: its admin can fetch it with "
            f"`t2v models pull {model.id}`.")


def find(models, model_id: str | None) -> Any:
    """The entry of ``models`` named ``model_id`` (by id or alias), or None."""
    return next((m for m in models.items if model_id in (m.id, *(m.aliases or ()))), None)
