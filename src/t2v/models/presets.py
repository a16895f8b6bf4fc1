"""Few-step presets: the sampling settings a distilled LoRA or model was trained for.

A step- and guidance-distilled LoRA (lightx2v, Wan 2.2 Lightning, CausVid) or model (FastWan) makes a video in
3-8 steps at guidance 1, and only with the settings it was distilled for; at a base model's 50 steps and
guidance 5 it gives a burnt, over-saturated clip. Each :class:`Preset` names those settings, the family and the
adapter files it is for, and its licence. A request gets them three ways:

- ``preset: NAME`` (``--preset NAME``);
- a LoRA the registry knows by its file name (``lightx2v_T2V_14B_cfg_step_distill...``);
- a LoRA file whose safetensors metadata has ``t2v_sampling`` (a JSON object of the same fields).

Settings the request leaves unset are filled; one it sets to another value is refused naming the field and
the preset's value (``preset: none`` keeps the request's own settings and turns detection off).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest

NONE = "none"  # preset: none turns detection off


@dataclass(frozen=True)
class Preset:
    """The sampling settings of one distill. ``files``: a regular expression its LoRA files' names match
    (``None``: a whole model, chosen by ``models``), ``experts``: which expert of a two-expert model each of
    its files is for (a regular expression per expert)."""

    name: str
    family: str
    title: str
    steps: int
    guidance_scale: float
    licence: str
    source: str  # where it is published (a hub repository, a file in it)
    flow_shift: float | None = None
    scheduler: str | None = None
    files: str | None = None
    experts: dict[str, str] = field(default_factory=dict)  # "high" / "low" -> regular expression of the file name
    models: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        """The request fields it sets (extras under their own names)."""
        out: dict[str, Any] = {"num_inference_steps": self.steps, "guidance_scale": self.guidance_scale}
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler
        return out

    def extras(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.flow_shift is not None:
            out["flow_shift"] = self.flow_shift
        if self.experts:
            out["guidance_scale_2"] = self.guidance_scale
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "title": self.title, "steps": self.steps,
                "guidance_scale": self.guidance_scale, "flow_shift": self.flow_shift, "licence": self.licence,
                "source": self.source}


# The published settings of each distill (their model cards and reference workflows).
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("lightx2v", "wan", "lightx2v step + CFG distill LoRA for Wan 2.1 14B (text- and image-to-video)",
           steps=4, guidance_scale=1.0, flow_shift=5.0, licence="Apache-2.0",
           source="lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill-Lightx2v; Kijai/WanVideo_comfy Lightx2v/",
           files=r"lightx2v.*(step_?distill|distill)|StepDistill"),
    Preset("wan22-lightning", "wan", "Wan 2.2 Lightning 4-step LoRAs for Wan 2.2 A14B (a high-noise and a low-noise file)",
           steps=4, guidance_scale=1.0, flow_shift=5.0, licence="Apache-2.0",
           source="lightx2v/Wan2.2-Lightning; Kijai/WanVideo_comfy Wan22-Lightning/",
           files=r"Wan2\.2-Lightning|Lightning.*A14B", experts={"high": r"HIGH|high_noise", "low": r"LOW|low_noise"}),
    Preset("causvid", "wan", "CausVid distill LoRA for Wan 2.1 14B",
           steps=8, guidance_scale=1.0, flow_shift=8.0, licence="CC-BY-NC-SA-4.0 (non-commercial)",
           source="tianweiy/CausVid; Kijai/WanVideo_comfy Wan21_CausVid_14B_T2V_lora_rank32.safetensors",
           files=r"causvid"),
    Preset("fastwan", "wan", "FastWan 2.1 1.3B: a 3-step sparse-distilled (DMD) Wan 2.1 model",
           steps=3, guidance_scale=1.0, flow_shift=8.0, licence="Apache-2.0",
           source="FastVideo/FastWan2.1-T2V-1.3B-Diffusers", models=("FastVideo/FastWan2.1-T2V-1.3B-Diffusers",)),
)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidRequest(f"preset: unknown {name!r}; choose one of: {', '.join([*PRESETS, NONE])}",
                             field="preset") from None


def file_metadata(file: Path) -> dict[str, Any] | None:
    """A LoRA file's ``t2v_sampling`` metadata (steps, guidance_scale, flow_shift), if it has any."""
    if file.suffix != ".safetensors" or not file.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(file), "pt") as f:
            raw = (f.metadata() or {}).get("t2v_sampling")
        data = json.loads(raw) if raw else None
    except Exception:  # noqa: BLE001  an unreadable header (safetensors' own error type) has no settings to give
        return None
    return data if isinstance(data, dict) else None


def from_metadata(file: Path, family: str, data: dict[str, Any]) -> Preset:
    """The preset a file's ``t2v_sampling`` metadata describes."""
    try:
        return Preset(name=f"metadata of {file.name}", family=family, title=f"the sampling settings in {file.name}",
                      steps=int(data["steps"]), guidance_scale=float(data.get("guidance_scale", 1.0)),
                      flow_shift=None if data.get("flow_shift") is None else float(data["flow_shift"]),
                      licence=str(data.get("licence", "as its file says")), source=str(file.name))
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest(f"loras: {file.name}'s t2v_sampling metadata needs steps (a whole number), and may "
                             "have guidance_scale and flow_shift", field="loras") from None


def lora_names(spec) -> list[str]:
    """The file names of one LoRA entry (a folder's safetensors files)."""
    path = Path(spec.path)
    return [p.name for p in sorted(path.glob("*.safetensors"))] if path.is_dir() else [path.name]


def detect(loras, family: str, model: str | None) -> tuple[Preset | None, int | None]:
    """The preset a request's model or LoRAs imply (the registry's file names, then the files' metadata), with
    the index of the LoRA entry it came from (None: the model)."""
    for p in PRESETS.values():
        if p.family == family and model is not None and model in p.models:
            return p, None
    for i, spec in enumerate(loras):
        for p in PRESETS.values():
            if p.family == family and p.files and any(re.search(p.files, n, re.IGNORECASE) for n in lora_names(spec)):
                return p, i
        path = Path(spec.path)
        for file in ([path] if path.is_file() else sorted(path.glob("*.safetensors"))):
            data = file_metadata(file)
            if data is not None:
                return from_metadata(file, family, data), i
    return None, None


def check_experts(preset: Preset, loras) -> None:
    """A preset with a file per expert: each of its single files goes to its expert only (``@high`` / ``@low``)."""
    for i, spec in enumerate(loras):
        path = Path(spec.path)
        if not preset.files or not path.is_file() or not re.search(preset.files, path.name, re.IGNORECASE):
            continue
        for expert, pattern in preset.experts.items():
            if re.search(pattern, path.name) and spec.experts != expert:
                raise InvalidRequest(f"loras.{i}.experts: {path.name} is {preset.title}'s {expert}-noise file: give it "
                                     f"as {path.name}@{expert}", field=f"loras.{i}.experts")


def apply_preset(request, family: str, model: str | None):
    """``request`` with its few-step preset's settings where it leaves them unset (the preset named in
    ``request.preset``, else one its model or LoRAs imply); a setting given otherwise is refused, naming the
    field and the preset's value. Returns the request with ``preset`` set to the one applied (or unchanged)."""
    asked = getattr(request, "preset", None)
    if asked == NONE:
        return request
    if asked is not None:
        preset, source = get_preset(asked), "preset"
        if preset.family != family:
            raise InvalidRequest(f"preset: {preset.name} is for {preset.family} models; this model is {family}",
                                 field="preset")
    else:
        preset, index = detect(getattr(request, "loras", ()), family, model)
        if preset is None:
            return request
        source = "the model" if index is None else f"loras.{index}"
    check_experts(preset, getattr(request, "loras", ()))
    fields = {name: getattr(request, name) for name in preset.settings()}
    extras = dict(request.extras)
    for have, wanted in ((fields, preset.settings()), (extras, preset.extras())):
        for name, value in wanted.items():
            if have.get(name) is None:
                have[name] = value
            elif have[name] != value:
                raise InvalidRequest(f"{name}: {preset.title} ({source}) runs with {name} {value}, not {have[name]}: "
                                     "leave it out, or set preset to none to keep yours", field=name)
    named = preset.name if preset.name in PRESETS else None  # a file's metadata is no registry preset
    return request.model_copy(update={**fields, "extras": extras, "preset": named})
