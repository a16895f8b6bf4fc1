"""``t2v`` commands: generate, replay, inspect, and the ``models`` group."""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import List, Optional

import typer

from t2v.version import __version__
from t2v.cli.bench import bench
from t2v.cli.cache import cache_app
from t2v.cli.common import Interrupt, cli_errors, err, fail, out, print_record, quiet_third_party
from t2v.cli.post import DEFLICKER, INTERPOLATE, INTERPOLATION, TARGET_FPS, UPSCALE, UPSCALER, post, post_fields
from t2v.cli.extend import CONTINUE_STRENGTH, OVERLAP, PROMPT_SCHEDULE, SECONDS, clip_defaults
from t2v.cli.models import models_app
from t2v.cli.service import history, jobs_app, keys_app, serve
from t2v.cli.sequence import image, sequence
from t2v.cli.train import data_app, eval_app, train, train_lora
from t2v.cli.desktop import desktop
from t2v.cli.records import records_app
from t2v.cli.ui import ui
from t2v.cli.worker import worker

app = typer.Typer(
    name="t2v",
    help="Text to video with diffusion models: generate, replay and inspect reproducible clips.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(records_app, name="records")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.command("serve")(serve)
app.command("worker")(worker)
app.command("post")(post)
app.command("history")(history)
app.command("ui")(ui)
app.command("desktop")(desktop)


def _version(value: bool) -> None:
    if value:
        out.print(f"t2v {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    quiet_third_party()


def _licence_notice(model: str | None) -> None:
    """Print the licence notice of a registered model that is about to download (not yet in the cache)."""
    from t2v.models.allowlist import is_cached
    from t2v.models.source import is_offline, license_notice
    from t2v.models.registry import lookup
    from t2v.settings import get_settings

    spec = lookup(model) if model else None
    settings = get_settings()
    if spec is None or not spec.license_notice or is_offline(settings) or is_cached(spec.id, spec.revision, settings):
        return
    err.print(f"[yellow]licence notice ({spec.id}, {spec.license}):[/] {license_notice(spec.id)}", highlight=False)


def run_with_progress(request, *, output, quiet: bool):
    from t2v.cli.progress import GenerationProgress
    from t2v.runner.modes import generate as run_request
    from t2v.settings import get_settings

    _licence_notice(request.model)
    with Interrupt() as interrupt, GenerationProgress(interrupt, quiet=quiet) as progress:
        return run_request(request, on_progress=progress, should_cancel=interrupt, output=output,
                           settings=get_settings())


def print_summary(result) -> None:
    for o in result.outputs:
        out.print(f"[green]wrote[/] {o.path}  ({o.bytes:,} bytes)", highlight=False)
    if result.sidecar:
        out.print(f"[green]wrote[/] {result.sidecar}", highlight=False)
    print_record(result.record)


SERVER = typer.Option(None, "--server", help="A running t2v server's URL: it makes the video (its model already "
                      "loaded) and the files come here.", envvar="T2V_SERVER")
KEY = typer.Option(None, "--key", help="API key for --server.", envvar="T2V_API_KEY")


def _run_remote(ctx: typer.Context, request, *, server: str, key: str | None, output, quiet: bool,
                threads: int | None = None) -> None:
    from t2v.cli.remote import generate_remote

    # this machine's T2V_MODEL, T2V_DTYPE, ... settings are not the server's: only flags given count
    local = {name for name in ("model", "device", "dtype", "memory", "threads")
             if (source := ctx.get_parameter_source(name)) is not None and source.name == "ENVIRONMENT"}
    generate_remote(request, server=server, key=key, output=output, quiet=quiet, threads=threads, ignore=local)


@app.command()
def generate(
    ctx: typer.Context,
    prompt: str = typer.Argument(..., help="What the video should show."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry id, hub id (org/name) or local folder.", envvar="T2V_MODEL"),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", "-n", help="What to avoid (default: the model's)."),
    frames: Optional[int] = typer.Option(None, "--frames", "-f", help="Number of frames (model default)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-s", help="Denoising steps (model default)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-g", help="Classifier-free guidance scale."),
    guidance_2: Optional[float] = typer.Option(None, "--guidance-2", help="Wan 2.2 A14B: guidance of the low-noise expert; HunyuanVideo: true CFG scale (above 1: a pass with the negative prompt)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frames per second of the output."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (random when omitted; always recorded)."),
    width: Optional[int] = typer.Option(None, "--width", "-W", help="Width in pixels, a multiple of 8 (16 for Wan)."),
    height: Optional[int] = typer.Option(None, "--height", "-H", help="Height in pixels, a multiple of 8 (16 for Wan)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="model (its own), ddim, dpm++, euler or unipc."),
    formats: Optional[List[str]] = typer.Option(None, "--format", help="mp4, webm, gif or png (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (clip.mp4), stem or folder. Default: ./outputs/<time>-<slug>."),
    crf: Optional[int] = typer.Option(None, "--crf", help="MP4/WebM quality, 0-51, lower is better."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.", envvar="T2V_DEVICE"),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16 or bf16.", envvar="T2V_DTYPE"),
    memory: str = typer.Option("auto", "--memory", help="Memory plan: auto, speed, balanced or low.", envvar="T2V_MEMORY"),
    lora: Optional[Path] = typer.Option(None, "--lora", help="LoRA adapter (t2v train-lora folder; Wan: a diffusers LoRA file)."),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="LoRA strength: 0 = off, 1 = as trained."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Image-to-video: the first frame (PNG, JPEG or WebP)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Video-to-video: the input clip (mp4, webm or gif), fitted to the size and frame count."),
    strength: Optional[float] = typer.Option(None, "--strength", help="Video-to-video: 0 keeps the input, 1 ignores it (default 0.6)."),
    decode_timestep: Optional[float] = typer.Option(None, "--decode-timestep", help="LTX-Video 0.9.1+: the timestep the VAE decodes at (model default)."),
    decode_noise_scale: Optional[float] = typer.Option(None, "--decode-noise-scale", help="LTX-Video 0.9.1+: decode noise (model default)."),
    motion_adapter: Optional[str] = typer.Option(None, "--motion-adapter", help="AnimateDiff: a MotionAdapter (hub id, registry id or folder) that animates the SD 1.5 --model."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024, help="CPU threads torch uses "
                                          "(default: torch's, the physical cores).", envvar="T2V_THREADS"),
    cache: Optional[str] = typer.Option(None, "--cache", help="Step cache NAME[:KEY=VALUE,...]: deepcache (UNet3D), fbc, "
                                        "taylorseer, magcache, pab, fastercache (transformers). See docs/speed.md."),
    attention: str = typer.Option("auto", "--attention", help="Attention kernel: auto (PyTorch SDPA), sdpa, flash or sage."),
    weights: str = typer.Option("auto", "--weights", help="Denoiser weights: auto (the dtype), fp8 (bf16 compute) or int8 (torchao)."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the denoiser's repeated blocks (the first run of a shape compiles)."),
    interpolate: Optional[int] = INTERPOLATE,
    target_fps: Optional[float] = TARGET_FPS,
    interpolation: str = INTERPOLATION,
    upscale: Optional[int] = UPSCALE,
    upscaler: str = UPSCALER,
    deflicker: bool = DEFLICKER,
    seconds: Optional[float] = SECONDS,
    prompt_schedule: Optional[List[str]] = PROMPT_SCHEDULE,
    overlap: Optional[int] = OVERLAP,
    continue_strength: Optional[float] = CONTINUE_STRENGTH,
    server: Optional[str] = SERVER,
    key: Optional[str] = KEY,
) -> None:
    """Generate a video from PROMPT; writes the files and a JSON record beside them."""
    flags = {k: v for k, v in locals().items() if k not in ("ctx", "server", "key")}
    with cli_errors():
        request = _request_from_flags(**flags)
        if server:
            return _run_remote(ctx, request, server=server, key=key, output=output, quiet=quiet, threads=threads)
        if threads is not None:  # else torch's own default: the physical cores
            from t2v.models.device import set_threads

            set_threads(threads)
        result = run_with_progress(request, output=output, quiet=quiet)
        if not quiet:
            print_summary(result)


def _request_from_flags(*, prompt, model, negative_prompt, frames, steps, guidance, fps, seed, width, height,
                        scheduler, formats, output, crf, device, dtype, memory, quiet, lora=None, lora_scale=1.0,
                        image=None, guidance_2=None, motion_adapter=None, decode_timestep=None, decode_noise_scale=None,
                        threads=None, cache=None, attention="auto", weights="auto", compile_=False, interpolate=None,
                        target_fps=None, interpolation="auto", upscale=None, upscaler="lanczos", deflicker=False,
                        video=None, strength=None, seconds=None, prompt_schedule=None, overlap=None,
                        continue_strength=None, extend=None):
    from t2v.inputs import check_image
    from t2v.requests import GenerationRequest

    if image is not None:
        check_image(image)  # a missing, damaged or oversized image exits 2 before any model loads
    fields = dict(
        prompt=prompt, negative_prompt=negative_prompt,
        num_frames=frames, num_inference_steps=steps, guidance_scale=guidance, guidance_scale_2=guidance_2, fps=fps, seed=seed, width=width,
        height=height, scheduler=scheduler, model=model, crf=crf, device=device, dtype=dtype, memory=memory,
        lora=None if lora is None else str(lora), lora_scale=lora_scale, image=None if image is None else str(image),
        video=None if video is None else str(video), strength=strength,
        seconds=seconds, prompt_schedule=prompt_schedule or None, overlap=overlap, continue_strength=continue_strength,
        extend=None if extend is None else str(extend),
        motion_adapter=motion_adapter, decode_timestep=decode_timestep, decode_noise_scale=decode_noise_scale,
        cache=cache, attention=attention, weights=weights, compile=compile_,
        post=post_fields(interpolate=interpolate, target_fps=target_fps, interpolation=interpolation, upscale=upscale,
                         upscaler=upscaler, deflicker=deflicker),
    )
    if formats:
        fields["formats"] = formats
    elif output is not None and output.suffix.lower() in (".mp4", ".webm", ".gif"):
        fields["formats"] = (output.suffix.lower()[1:],)
    return GenerationRequest.create(**fields)


@app.command()
def extend(
    ctx: typer.Context,
    clip: Path = typer.Argument(..., help="The clip to continue (mp4, webm or gif)."),
    prompt: str = typer.Argument(..., help="What the continuation should show."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Seconds to add (default: one segment)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry id, hub id (org/name) or local folder.", envvar="T2V_MODEL"),
    prompt_schedule: Optional[List[str]] = PROMPT_SCHEDULE,
    overlap: Optional[int] = OVERLAP,
    continue_strength: Optional[float] = CONTINUE_STRENGTH,
    frames: Optional[int] = typer.Option(None, "--frames", "-f", help="Frames per segment (model default)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-s", help="Denoising steps (model default)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", "-g", help="Classifier-free guidance scale."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frames per second (default: the clip's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the first new segment (the next take seed + 1, ...)."),
    width: Optional[int] = typer.Option(None, "--width", "-W", help="Width (default: the clip's)."),
    height: Optional[int] = typer.Option(None, "--height", "-H", help="Height (default: the clip's)."),
    formats: Optional[List[str]] = typer.Option(None, "--format", help="mp4, webm, gif or png (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File (long.mp4), stem or folder."),
    crf: Optional[int] = typer.Option(None, "--crf", help="MP4/WebM quality, 0-51, lower is better."),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", "-n", help="What to avoid (default: the model's)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="model (its own), ddim, dpm++, euler or unipc."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.", envvar="T2V_DEVICE"),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16 or bf16.", envvar="T2V_DTYPE"),
    memory: str = typer.Option("auto", "--memory", help="Memory plan: auto, speed, balanced or low.", envvar="T2V_MEMORY"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary; errors only."),
    interpolate: Optional[int] = INTERPOLATE,
    target_fps: Optional[float] = TARGET_FPS,
    interpolation: str = INTERPOLATION,
    upscale: Optional[int] = UPSCALE,
    upscaler: str = UPSCALER,
    deflicker: bool = DEFLICKER,
    server: Optional[str] = SERVER,
    key: Optional[str] = KEY,
) -> None:
    """Continue CLIP with PROMPT for --seconds more: segments of the model's length, each from the end of the
    last (image-to-video from its last frame, or video-to-video of the overlap), the seams cross-faded. Writes
    the clip and its continuation as one video with its record."""
    with cli_errors():
        fps, width, height = clip_defaults(clip, fps=fps, width=width, height=height)
        request = _request_from_flags(
            prompt=prompt, model=model, negative_prompt=negative_prompt, frames=frames, steps=steps, guidance=guidance,
            fps=fps, seed=seed, width=width, height=height, scheduler=scheduler, formats=formats, output=output, crf=crf,
            device=device, dtype=dtype, memory=memory, quiet=quiet, interpolate=interpolate, target_fps=target_fps,
            interpolation=interpolation, upscale=upscale, upscaler=upscaler, deflicker=deflicker, seconds=seconds,
            prompt_schedule=prompt_schedule, overlap=overlap, continue_strength=continue_strength, extend=clip)
        if server:  # the clip is uploaded; the server makes the continuation
            return _run_remote(ctx, request, server=server, key=key, output=output, quiet=quiet)
        result = run_with_progress(request, output=output, quiet=quiet)
        if not quiet:
            print_summary(result)


def _local_flags(fn):
    """``fn`` with generate's flags, less those of a run on a server (``--server``, ``--key``)."""
    signature = inspect.signature(generate)
    fn = functools.wraps(generate)(fn)
    fn.__signature__ = signature.replace(parameters=[p for n, p in signature.parameters.items()
                                                     if n not in ("ctx", "server", "key")])
    return fn


@app.command("plan", help="Predict peak memory and time per step for a request (same flags as generate); loads no weights.")
@_local_flags
def plan(**flags) -> None:
    from t2v.cli.plan import show_plan

    with cli_errors():
        if flags.get("threads") is not None:  # the times depend on it, as generate's run does
            from t2v.models.device import set_threads

            set_threads(flags["threads"])
        show_plan(_request_from_flags(**flags))


def _load_record(path: Path) -> dict:
    from t2v.errors import InvalidRequest

    if not path.exists():
        raise InvalidRequest(f"{path} does not exist", field="record")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidRequest(f"{path} is not a readable JSON record: {e}", field="record") from None
    return _embedded(path)


def _embedded(path: Path) -> dict:
    """The record embedded in a file t2v wrote; a file that is not one (damaged, another program's) is the
    user's input to fix: InvalidRequest (exit 2)."""
    from t2v.errors import ExportError, InvalidRequest
    from t2v.export import read_embedded

    try:
        return read_embedded(path)
    except ExportError as e:
        raise InvalidRequest(str(e), field="file") from None


@app.command()
def replay(
    record: Path = typer.Argument(..., help="A JSON record, or a video with an embedded record."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write (default: ./outputs/...)."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the recorded device."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Override the recorded dtype."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Override the recorded model (e.g. a local copy)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when the frames differ from the record."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Regenerate a video (or image sequence) from its record and say whether the frames are identical."""
    from t2v.record import environment_differences, request_fields
    from t2v.requests import request_from_fields

    with cli_errors():
        old = _load_record(record)
        fields = request_fields(old)
        fields.update({k: v for k, v in (("device", device), ("dtype", dtype), ("model", model)) if v})
        if old.get("post_history"):  # made by `t2v post`: the original, then every post step again
            from t2v.cli.post import replay_post_chain

            if not replay_post_chain(old, fields, output=output, quiet=quiet, run=run_with_progress) and strict:
                raise typer.Exit(1)
            return
        result = run_with_progress(request_from_fields({**fields, "mode": old.get("mode", "video")}), output=output, quiet=quiet)
        if not quiet:
            print_summary(result)
        same = result.record["frames_sha256"] == old.get("frames_sha256")
        if "postprocess" in old:  # and the post-processed frames: every step made again
            same = same and result.record.get("postprocess", {}).get("frames_sha256") == old["postprocess"].get(
                "frames_sha256")
        diffs = environment_differences(old, result.record)
        if same:
            out.print(f"[bold green]identical frames[/] to the record (sha256 {old['frames_sha256'][:16]}…)", highlight=False)
        else:
            why = "; ".join(diffs) if diffs else "same device, dtype, model and versions"
            out.print(f"[bold yellow]frames differ[/] from the record ({why})", highlight=False)
            if strict:
                raise typer.Exit(1)


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="An MP4, WebM, GIF, PNG (or frames folder) written by t2v."),
) -> None:
    """Print the record embedded in a file t2v wrote."""
    from t2v.errors import InvalidRequest

    with cli_errors():
        if not file.exists():
            raise InvalidRequest(f"{file} does not exist", field="file")
        out.print_json(json.dumps(_embedded(file)))


def main() -> None:
    import sys

    from t2v.cli.extend import spread_schedule

    app(args=spread_schedule(sys.argv[1:]), prog_name="t2v")


__all__ = ["app", "main", "fail"]


app.command("image")(image)
app.command("sequence")(sequence)
app.command("train")(train)
app.command("train-lora")(train_lora)
app.command("bench")(bench)
