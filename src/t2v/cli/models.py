"""``t2v models``: list, show, pull, make-tiny."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from t2v.cli.common import cli_errors, err, out
from t2v.models.catalog import CATALOG
from t2v.models.registry import REGISTRY, folder_info, lookup
from t2v.settings import get_settings
from t2v.families import all_families
from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.models.source import check_folder, license_notice, pull as pull_model
from t2v.models.tiny import make_tiny as build

models_app = typer.Typer(help="Known models, downloads, and tiny offline test models.", no_args_is_help=True)


def _cached(model_id: str) -> bool:
    from huggingface_hub import snapshot_download

    spec = lookup(model_id)
    if spec is not None and spec.bundled_path is not None:
        return spec.bundled_path.is_dir()  # ships with t2v

    try:
        snapshot_download(model_id, cache_dir=str(get_settings().cache_dir), local_files_only=True)
        return True
    except Exception:
        return False


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
                family: Optional[str] = typer.Option(None, "--family", help="Only this family's models.")) -> None:
    """The registered models by family: task, defaults, download size, memory needs, licence, and whether cached."""
    with cli_errors():
        families = all_families()
        specs = sorted(REGISTRY.values(), key=lambda s: (list(families).index(s.family) if s.family in families else 99, s.id))
        if family is not None:
            if family not in families:
                raise InvalidRequest(f"unknown family {family!r}; choose one of: {', '.join(families)}", field="family")
            specs = [s for s in specs if s.family == family]
        rows = [{**spec.to_dict(), "cached": _cached(spec.id)} for spec in specs]
        if as_json:
            out.print_json(json.dumps(rows))
            return
        for name in dict.fromkeys(r["family"] for r in rows):
            fam = families.get(name)
            table = Table(title=f"{name}: {fam.description}" if fam else name, title_justify="left")
            for col in ("id", "task", "defaults", "download", "VRAM", "license", "cached"):
                table.add_column(col)
            for r in (r for r in rows if r["family"] == name):
                d = r["defaults"]
                shown = f"{d['width']}x{d['height']} {d['num_frames']}f {d['fps']:g}fps {d['num_inference_steps']}st"
                table.add_row(r["id"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else ""),
                              " ".join(r["tasks"]), shown,
                              "bundled" if r["bundled"] else f"{r['download_gb']} GB", f"~{r['vram_gb']} GB",
                              r["license"] + (" (!)" if r["license_notice"] else ""), "yes" if r["cached"] else "no")
            out.print(table)
        out.print("task: t2v text-to-video, i2v image-to-video (--image), image text-to-image; "
                  "defaults: size, frames, fps, steps (st)", highlight=False)
        if any(r["license_notice"] for r in rows):
            out.print("(!) read the licence notice before downloading: t2v models show ID", highlight=False)
        out.print("Any local folder in the diffusers layout works too: --model PATH", highlight=False)


@models_app.command("show")
def show(model: str = typer.Argument(..., help="Registry id, alias or local folder.")) -> None:
    """Everything t2v knows about one model."""
    with cli_errors():
        spec = lookup(model)
        if spec:
            info = {**spec.to_dict(), "cached": _cached(spec.id)}
        elif Path(model).expanduser().is_dir():
            path = Path(model).expanduser().resolve()
            index = check_folder(path)
            family, defaults = folder_info(path)
            info = {"id": str(path), "family": family, "defaults": defaults, "pipeline": index.get("_class_name"),
                    "fp16_variant": any(path.glob("*/*.fp16.*"))}
        else:
            raise ModelUnavailable(f"unknown model {model!r}: not registered (see `t2v models list`) and not a folder")
        card = CATALOG.card(info["family"]) if info.get("family") != "unknown" else None
        if card is not None and card.extras is not None:  # the family's own settings (a request's extras)
            info["extras"] = {name: f.description for name, f in card.extras.model_fields.items()}
        out.print_json(json.dumps(info))


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
        path = pull_model(model, get_settings(), revision=revision, fp16=not fp32)
        out.print(f"[green]cached[/] {model} at {path}", highlight=False)


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
        out.print(f"[green]built[/] tiny {family} model at {path}", highlight=False)
