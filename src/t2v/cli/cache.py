"""``t2v cache calibrate``: measure a model's MagCache magnitude ratios (for ``--cache magcache``)."""

from __future__ import annotations

from typing import Optional

import typer

from t2v.cli.common import cli_errors, out

cache_app = typer.Typer(help="Step caches: `t2v cache calibrate --model M --steps N` (for --cache magcache).",
                        no_args_is_help=True)


@cache_app.command("calibrate")
def calibrate(
    model: str = typer.Option(..., "--model", "-m", help="Model to calibrate (registry id, hub id or folder)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps the ratios are for (model default)."),
    prompt: str = typer.Option("a cat walking through a sunny garden, cinematic", "--prompt",
                               help="Prompt of the calibration run."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device"),
    dtype: str = typer.Option("auto", "--dtype"),
) -> None:
    """One uncached run measuring how the transformer's output residual shrinks from step to step (MagCache's
    magnitude ratios); kept under T2V_HOME for this model's weights and step count, where `--cache magcache`
    finds them."""
    from t2v.engine.stepcache import calibrate as run_calibration
    from t2v.request import GenerationRequest

    with cli_errors():
        request = GenerationRequest(prompt=prompt, model=model, seed=seed, num_inference_steps=steps, device=device,
                                    dtype=dtype, formats=())
        path, ratios = run_calibration(request)
        for name, values in ratios.items():
            out.print(f"{name}: {len(values)} ratios, " + ", ".join(f"{v:.3f}" for v in values[:8])
                      + (" ..." if len(values) > 8 else ""), highlight=False)
        out.print(f"[green]wrote[/] {path}" if path else "[yellow]not kept[/] (T2V_HOME unreadable)", highlight=False,
                  soft_wrap=True)
