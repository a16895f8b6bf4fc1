"""``t2v image`` and ``t2v sequence``: image mode from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from t2v.cli.common import JSON_OUTPUT, Interrupt, cli_errors, err, out, print_json_lines, stdout_kept_for_json
from t2v.cli.options import with_request_options
from t2v.cli.run import OVERWRITE, VIDEO_ENDINGS, refuse_existing, refuse_taken, report, run_with_progress
from t2v.requests import ImageRequest, SequenceRequest
from t2v.cli.progress import GenerationProgress
from t2v.settings import get_settings


@with_request_options(ImageRequest, "image")
def image(
    prompt: str = typer.Argument(..., help="What the image should show."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (image.png; -NN added when -n > 1), stem or folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    as_json: bool = JSON_OUTPUT,
    overwrite: bool = OVERWRITE,
    fields: dict = None,
) -> None:
    """Text to image: PNG files with the JSON record embedded (tEXt) and beside them."""
    from t2v.export.outputs import output_stem  # deferred: imports numpy
    from t2v.runner.image import generate_images, image_names  # deferred: imports PIL, numpy

    with cli_errors():
        request = ImageRequest(prompt=prompt, **fields)
        if output is not None and not overwrite:
            base = Path(str(output)[:-4]) if str(output).lower().endswith(".png") else output
            stem, _ = output_stem(base, prompt)
            refuse_taken([n.with_name(n.name + end) for n in image_names(stem, request.count) for end in (".png", ".json")])
        with stdout_kept_for_json(as_json), Interrupt() as interrupt, \
                GenerationProgress(interrupt, quiet=quiet) as progress:
            results = generate_images(request, on_progress=progress, should_cancel=interrupt, output=output,
                                      settings=get_settings())
        if as_json:
            print_json_lines([r.record for r in results])
        elif not quiet:
            for r in results:
                out.print(f"[green]wrote[/] {escape(str(r.outputs[0].path))}  (seed {r.seed})", highlight=False)


@with_request_options(SequenceRequest, "sequence", post=True)
def sequence(
    keyframes: List[str] = typer.Argument(..., help="Keyframes 'INDEX: prompt', e.g. '0: a forest in spring' '48: autumn'."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (forest.mp4), stem or folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    as_json: bool = JSON_OUTPUT,
    overwrite: bool = OVERWRITE,
    fields: dict = None,
) -> None:
    """A video from keyframe prompts with a text-to-image model, kept coherent by --method."""
    with cli_errors():
        fields = dict(fields)
        if "formats" not in fields and output is not None and output.suffix.lower() in VIDEO_ENDINGS:
            fields["formats"] = (output.suffix.lower()[1:],)
        request = SequenceRequest(keyframes=keyframes, **fields)
        refuse_existing(request, output, overwrite=overwrite)
        with stdout_kept_for_json(as_json):
            result = run_with_progress(request, output=output, quiet=quiet)
        report(result, quiet=quiet, as_json=as_json)
        if not quiet:
            for name, fig in result.record.get("figures", {}).items():
                err.print(f"[green]wrote[/] {name.replace('_', ' ')}: {escape(str(fig['file']))} "
                          f"({fig['rows']}x{fig['columns']})", highlight=False)
