"""``t2v models``: list, show, presets, pull, make-tiny."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

import typer

from t2v.cli.common import cli_errors, err, out
from t2v.cli.model_views import print_model, print_model_list
from t2v.models.catalog import CATALOG
from t2v.models.registry import REGISTRY, folder_info, lookup, unknown_model
from t2v.settings import get_settings
from t2v.families import all_families, get_family
from t2v.requests import GenerationRequest, cli_spelling
from t2v.runner.weightchoices import choices, readable
from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.models.download import cached_snapshot, license_notice
from t2v.models.presets import PRESETS
from t2v.models.source import HUB_ID, check_folder, pull as pull_model
from t2v.models.tiny import make_tiny as build

models_app = typer.Typer(help="Known models, downloads, and tiny offline test models.", no_args_is_help=True)


def cached_folder(model_id: str) -> Path | None:
    """The model's complete folder on this machine without downloading (bundled, or in the t2v cache), or None."""
    spec = lookup(model_id)
    if spec is not None and spec.bundled_path is not None:
        return spec.bundled_path if spec.bundled_path.is_dir() else None  # ships with t2v
    return cached_snapshot(model_id, spec.revision if spec else None, get_settings().cache_dir)


def default_models() -> dict[str, str]:
    """The models a command naming none uses: ``video`` (t2v generate: T2V_MODEL, else T2V_DEFAULT_MODEL),
    ``image`` (t2v image and sequence: T2V_DEFAULT_IMAGE_MODEL), as registry ids where registered."""
    settings = get_settings()
    video = os.environ.get("T2V_MODEL") or settings.default_model
    named = {"video": video, "image": settings.default_image_model}
    out = {task: (spec.id if (spec := lookup(model)) else model) for task, model in named.items()}
    out["video_setting"] = "T2V_MODEL" if os.environ.get("T2V_MODEL") else "T2V_DEFAULT_MODEL"
    return out


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="The raw list as JSON (each model's registry "
                                             "record, with cached and default)."),
                family: Optional[str] = typer.Option(None, "--family", help="Only this family's models.")) -> None:
    """The registered models by family: what each makes, its defaults, GPU memory, download, licence, and
    whether it is cached; the default models marked *."""
    with cli_errors():
        families = all_families()
        specs = sorted(REGISTRY.values(), key=lambda s: (list(families).index(s.family) if s.family in families else 99, s.id))
        if family is not None:
            if family not in families:
                raise InvalidRequest(f"unknown family {family!r}; choose one of: {', '.join(families)}", field="family")
            specs = [s for s in specs if s.family == family]
        defaults = default_models()
        mine = (defaults["video"], defaults["image"])
        rows = [{**spec.to_dict(), "cached": cached_folder(spec.id) is not None, "default": spec.id in mine}
                for spec in specs]
        if as_json:
            out.print_json(json.dumps(rows))
            return
        print_model_list(out, rows, families, defaults)


@models_app.command("presets")
def presets(as_json: bool = typer.Option(False, "--json", help="The presets as JSON.")) -> None:
    """Few-step presets (--preset NAME): the steps, guidance and shift each distilled LoRA or model was made
    for, the family it is for, where it is published and its licence."""
    rows = [p.describe() for p in PRESETS.values()]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("preset", "family", "steps", "guidance", "shift", "licence", "what", box=None)
    for r in rows:
        table.add_row(r["name"], r["family"], str(r["steps"]), str(r["guidance_scale"]),
                      "" if r["flow_shift"] is None else str(r["flow_shift"]), r["licence"], r["title"])
    out.print(table)


def folder_record(path: Path, model_id: str) -> dict:
    """What ``models show`` tells of a model folder (a local one, or a hub snapshot)."""
    index = check_folder(path, get_family)
    family, defaults = folder_info(path, get_family)
    return {"id": model_id, "family": family, "defaults": defaults, "pipeline": index.get("_class_name"),
            "fp16_variant": any(path.glob("*/*.fp16.*"))}


@models_app.command("show")
def show(model: str = typer.Argument(..., help="Registry id, alias or local folder."),
         as_json: bool = typer.Option(False, "--json", help="The raw record as JSON.")) -> None:
    """Everything t2v knows about one model: what it makes, its defaults and limits, GPU memory, where it comes
    from (hub id, revision, variant), its licence, what it supports and its family's own options."""
    with cli_errors():
        spec = lookup(model)
        folder = None
        if spec:
            folder = cached_folder(spec.id)
            info = {**spec.to_dict(), "cached": folder is not None}
        elif Path(model).expanduser().is_dir():
            folder = Path(model).expanduser().resolve()
            info = folder_record(folder, str(folder))
        elif HUB_ID.match(model):  # pulled by its hub id
            folder = cached_folder(model)
            if folder is None:
                raise ModelUnavailable(f"{model} is not registered and not (completely) in the cache: `t2v models "
                                       f"pull {model}` fetches it")
            info = {**folder_record(folder, model), "cached": True}
        else:
            raise unknown_model(model)
        card = CATALOG.card(info["family"]) if info.get("family") != "unknown" else None
        if card is not None and card.extras is not None:  # the family's own settings (a request's extras)
            info["extras"] = {name: f.description for name, f in card.extras.model_fields.items()}
        if folder is not None and card is not None:  # its configs are here: the files its denoiser can run from
            info["weight_files"] = weight_files(folder, get_family(info["family"]), info.get("defaults") or {})
        if as_json:
            out.print_json(json.dumps(info))
            return
        fam = get_family(info["family"]) if card is not None else None
        settings = get_settings()
        flags = {" ".join(cli_spelling(card.extras, name)): text for name, text in info.get("extras", {}).items()}
        print_model(out, info, family=fam, rules=fam.rules(folder) if fam else None, flags=flags,
                    on_disk=folder is not None, limits={"max_side": settings.max_side,
                                                        "max_frames": settings.max_frames,
                                                        "max_steps": settings.max_steps})


def weight_files(folder: Path, family, defaults: dict) -> list[dict]:
    """:func:`t2v.runner.weightchoices.choices` at the model's defaults, as records."""
    if not readable(folder):
        return []
    shape = {k: defaults[k] for k in ("width", "height", "num_frames", "guidance_scale") if defaults.get(k) is not None}
    err.print("weight files: predicting the GPU memory at the model's defaults (a dry run on the meta device the "
              "first time)", highlight=False)
    return [c.to_dict() for c in choices(folder, GenerationRequest(prompt="a", model=str(folder), **shape),
                                         family=family, defaults=defaults)]


@models_app.command("pull")
def pull(
    model: str = typer.Argument(..., help="Registry id, alias or hub id."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit."),
    fp32: bool = typer.Option(False, "--fp32", help="Fetch the full-precision weights instead of the fp16 variant."),
) -> None:
    """Download a model into $T2V_HOME/models (on a machine with internet access)."""
    with cli_errors():
        spec = lookup(model)
        if spec is not None:
            err.print(f"licence of {spec.id}: {spec.license} {spec.license_url}".rstrip(), highlight=False)
        notice = license_notice(model)
        if notice:
            err.print(f"[yellow]licence notice:[/] {notice}", highlight=False)
        path = pull_model(model, get_settings(), families=get_family, revision=revision, fp16=not fp32)
        out.print(f"[green]cached[/] {model} at {path}", highlight=False, soft_wrap=True)


@models_app.command("make-tiny")
def make_tiny(
    directory: Path = typer.Argument(..., help="Folder to create."),
    family: str = typer.Option("modelscope", "--family", help="Model family to imitate."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random weights."),
    fp16_variant: bool = typer.Option(True, "--fp16-variant/--no-fp16-variant", help="Also write *.fp16.safetensors files."),
) -> None:
    """Build a tiny random-weight model in the exact diffusers layout, fully offline."""
    with cli_errors():
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise InvalidRequest(f"{directory} exists and is not an empty folder", field="directory")
        made = not directory.exists()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidRequest(f"directory: cannot create {directory} ({e.strerror or e}); name a folder you can "
                                 "write, e.g. ./tiny-model", field="directory") from None
        try:
            path = build(directory, family=family, seed=seed, fp16_variant=fp16_variant)
        except BaseException:
            if made:  # nothing half-built is left behind
                shutil.rmtree(directory, ignore_errors=True)
            raise
        out.print(f"[green]built[/] tiny {family} model at {path}", highlight=False, soft_wrap=True)
