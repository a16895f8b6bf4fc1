"""``t2v image`` and ``t2v sequence``: image mode from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from t2v.cli.common import Interrupt, cli_errors, err, out
from t2v.cli.post import DEFLICKER, INTERPOLATE, INTERPOLATION, TARGET_FPS, UPSCALE, UPSCALER, post_fields


def _common(model, negative_prompt, steps, guidance, seed, width, height, scheduler, device, dtype) -> dict:
    return dict(model=model, negative_prompt=negative_prompt, num_inference_steps=steps, guidance_scale=guidance,
                seed=seed, width=width, height=height, scheduler=scheduler, device=device, dtype=dtype)


_MODEL_HELP = "Text-to-image model: registry id, hub id or folder (default: T2V_DEFAULT_IMAGE_MODEL, SD 1.5)."


def image(
    prompt: str = typer.Argument(..., help="What the image should show."),
    count: int = typer.Option(1, "--count", "-n", help="How many images (seeds seed, seed+1, ...)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODEL_HELP),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="What to avoid."),
    steps: Optional[int] = typer.Option(None, "--steps", "-s"),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-g"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    width: Optional[int] = typer.Option(None, "--width", "-W"),
    height: Optional[int] = typer.Option(None, "--height", "-H"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="ddim, dpm++, euler or unipc."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (image.png; -NN added when -n > 1), stem or folder."),
    device: str = typer.Option("auto", "--device", envvar="T2V_DEVICE"),
    dtype: str = typer.Option("auto", "--dtype", envvar="T2V_DTYPE"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Text to image: PNG files with the JSON record embedded (tEXt) and beside them."""
    from t2v.cli.progress import GenerationProgress
    from t2v.requests import ImageRequest
    from t2v.image.run import generate_images

    with cli_errors():
        request = ImageRequest.create(prompt=prompt, count=count, **_common(model, negative_prompt, steps, guidance, seed,
                                                                            width, height, scheduler, device, dtype))
        with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=quiet) as progress:
            results = generate_images(request, on_progress=progress, should_cancel=interrupt, output=output)
        if not quiet:
            for r in results:
                out.print(f"[green]wrote[/] {r.outputs[0].path}  (seed {r.seed})", highlight=False)


def sequence(
    keyframes: List[str] = typer.Argument(..., help="Keyframes 'INDEX: prompt', e.g. '0: a forest in spring' '48: autumn'."),
    method: str = typer.Option("latent-walk", "--method", help="latent-walk, prompt-interp, img2img, interpolate or independent."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODEL_HELP),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="What to avoid."),
    steps: Optional[int] = typer.Option(None, "--steps", "-s"),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-g"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base seed (keyframe k uses seed + k where the method needs several)."),
    width: Optional[int] = typer.Option(None, "--width", "-W"),
    height: Optional[int] = typer.Option(None, "--height", "-H"),
    fps: Optional[float] = typer.Option(None, "--fps"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler"),
    strength: float = typer.Option(0.55, "--strength", help="img2img: how much each frame may change, (0, 1]."),
    zoom: float = typer.Option(1.0, "--zoom", help="img2img camera: scale per frame (1.02 zooms in 2%)."),
    pan_x: float = typer.Option(0.0, "--pan-x", help="img2img camera: pixels per frame to the right."),
    pan_y: float = typer.Option(0.0, "--pan-y", help="img2img camera: pixels per frame down."),
    rotate: float = typer.Option(0.0, "--rotate", help="img2img camera: degrees per frame."),
    contact_sheet: bool = typer.Option(False, "--contact-sheet", help="Also write OUT.contact.png, a grid of the frames."),
    denoise_grid: Optional[str] = typer.Option(None, "--denoise-grid",
                                               help="Also write OUT.denoise.png: the predicted image at these steps ('1,5,10,25' or 'auto')."),
    formats: Optional[List[str]] = typer.Option(None, "--format", help="mp4, webm, gif or png (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (forest.mp4), stem or folder."),
    device: str = typer.Option("auto", "--device", envvar="T2V_DEVICE"),
    dtype: str = typer.Option("auto", "--dtype", envvar="T2V_DTYPE"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    interpolate: Optional[int] = INTERPOLATE,
    target_fps: Optional[float] = TARGET_FPS,
    interpolation: str = INTERPOLATION,
    upscale: Optional[int] = UPSCALE,
    upscaler: str = UPSCALER,
    deflicker: bool = DEFLICKER,
) -> None:
    """A video from keyframe prompts with a text-to-image model, kept coherent by --method."""
    from t2v.cli.app import print_summary, run_with_progress
    from t2v.requests import SequenceRequest

    with cli_errors():
        post = post_fields(interpolate=interpolate, target_fps=target_fps, interpolation=interpolation, upscale=upscale,
                           upscaler=upscaler, deflicker=deflicker)
        fields = dict(keyframes=keyframes, method=method, fps=fps, strength=strength, zoom=zoom, pan_x=pan_x, pan_y=pan_y,
                      rotate=rotate, contact_sheet=contact_sheet, denoise_grid=denoise_grid or (), post=post,
                      **_common(model, negative_prompt, steps, guidance, seed, width, height, scheduler, device, dtype))
        if formats:
            fields["formats"] = formats
        elif output is not None and output.suffix.lower() in (".mp4", ".webm", ".gif"):
            fields["formats"] = (output.suffix.lower()[1:],)
        result = run_with_progress(SequenceRequest.create(**fields), output=output, quiet=quiet)
        if not quiet:
            print_summary(result)
            for name, fig in result.record.get("figures", {}).items():
                err.print(f"[green]wrote[/] {name.replace('_', ' ')}: {fig['file']} ({fig['rows']}x{fig['columns']})", highlight=False)
