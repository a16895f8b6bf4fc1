"""``t2v cache``: the on-disk caches under ``$T2V_HOME/cache`` (``list``, ``clear``), and ``calibrate``, which
measures a model's MagCache magnitude ratios (for ``--cache magcache``)."""

from __future__ import annotations

from typing import List, Optional

import typer

from t2v.cli.common import cli_errors, out
from t2v.models import caches
from t2v.settings import get_settings
from t2v import generate
from t2v.sampling.stepcache import calibrate as run_calibration
from t2v.requests import GenerationRequest

cache_app = typer.Typer(help="On-disk caches: `t2v cache list`, `t2v cache clear [NAME...]`; and MagCache's "
                             "calibration, `t2v cache calibrate --model M --steps N` (for --cache magcache).",
                        no_args_is_help=True)


@cache_app.command("list")
def list_caches() -> None:
    """Each cache under T2V_HOME/cache: what it holds, its files, size and when it was last used."""
    from rich.table import Table

    with cli_errors():
        home = get_settings().home
        table = Table(title=f"caches under {caches.root(home)}")
        for col in ("name", "files", "size", "last used", "what"):
            table.add_column(col, justify="right" if col in ("files", "size") else "left")
        total = 0
        for cache in caches.CACHES:
            u = caches.usage(home, cache)
            total += u.bytes
            table.add_row(cache.name, str(u.files), _size(u.bytes), _ago(u.last_used), cache.what)
        out.print(table)
        out.print(f"{_size(total)} in all; `t2v cache clear` deletes all but magcache (name caches to pick)",
                  highlight=False)


@cache_app.command("clear")
def clear_caches(
    names: Optional[List[str]] = typer.Argument(None, help="Caches to clear (default: all but magcache): "
                                                "converted, hashes, dry-runs, step-times, artifacts, magcache."),
    older_than: Optional[float] = typer.Option(None, "--older-than", min=0.0,
                                               help="Only files unused for this many days."),
) -> None:
    """Delete cached files: they are made again when needed (converted weights on the next load, hashes read
    again, dry runs and step times measured again). Safe beside running processes."""
    with cli_errors():
        picked = caches.pick(names)
        home = get_settings().home
        for cache in picked:
            gone, freed = caches.clear(home, cache, older_than_s=None if older_than is None else older_than * 86400)
            out.print(f"{cache.name}: {gone} file{'' if gone == 1 else 's'}, {_size(freed)} freed", highlight=False)


def _size(n: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def _ago(t: float | None) -> str:
    if t is None:
        return "-"
    import time

    s = max(time.time() - t, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return "just now"


@cache_app.command("calibrate")
def calibrate(
    model: str = typer.Option(..., "--model", "-m", help="Model to calibrate (registry id, hub id or folder)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps the ratios are for (model default)."),
    prompt: str = typer.Option("a cat walking through a sunny garden, cinematic", "--prompt",
                               help="Prompt of the calibration run."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration run."),
    device: str = typer.Option("auto", "--device", help="Device to run on: auto, cpu, cuda or mps."),
    dtype: str = typer.Option("auto", "--dtype", help="Weights' dtype: auto, fp32, fp16 or bf16."),
) -> None:
    """One uncached run measuring how the transformer's output residual shrinks from step to step (MagCache's
    magnitude ratios); kept under T2V_HOME for this model's weights and step count, where `--cache magcache`
    finds them."""
    with cli_errors():
        request = GenerationRequest(prompt=prompt, model=model, seed=seed, num_inference_steps=steps, device=device,
                                    dtype=dtype, formats=())
        path, ratios = run_calibration(request, generate)
        for name, values in ratios.items():
            out.print(f"{name}: {len(values)} ratios, " + ", ".join(f"{v:.3f}" for v in values[:8])
                      + (" ..." if len(values) > 8 else ""), highlight=False)
        out.print(f"[green]wrote[/] {path}" if path else "[yellow]not kept[/] (T2V_HOME unreadable)", highlight=False,
                  soft_wrap=True)
