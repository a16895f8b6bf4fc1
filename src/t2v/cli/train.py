"""``t2v train``, ``t2v train-lora``, ``t2v eval shapes`` and ``t2v data shapes``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from t2v.cli.common import cli_errors, err, out
from t2v.cli.options import option
from t2v.requests import PostSpec, post_from_flags
from t2v.errors import InvalidRequest

eval_app = typer.Typer(help="Measure a model: `t2v eval shapes --model t2v-shapes`.", no_args_is_help=True)
data_app = typer.Typer(help="Write training data sets: `t2v data shapes DIR`.", no_args_is_help=True)

_PHASES = {"vae": "Autoencoder", "decoder": "Decoder", "encode": "Encoding clips", "refine-sample": "Re-rendering clips",
           "refine": "Refining decoder", "unet": "Diffusion model", "lora": "LoRA", "eval": "Evaluating"}


class TrainProgress:
    """Rich bars per phase, loss in the description; an ``on_event`` callback for the trainers.

    When stderr is not a terminal (nohup, CI logs) Rich draws nothing until the end, so a plain line is
    printed every 5% of each phase instead."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=err)
        self.tasks: dict[str, int] = {}
        self.printed: dict[str, int] = {}  # phase -> last 5% bucket printed

    def __enter__(self) -> "TrainProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event) -> None:
        if event.phase in ("data", "preview", "done"):
            if event.message and event.phase != "done":
                self.progress.console.print(f"[dim]{event.phase}:[/] {event.message}", highlight=False)
            return
        if event.phase not in self.tasks:
            self.tasks[event.phase] = self.progress.add_task(_PHASES.get(event.phase, event.phase), total=event.total, loss="")
        loss = "" if event.loss is None else f"loss {event.loss:.4f}"
        self.progress.update(self.tasks[event.phase], completed=event.step, total=event.total, loss=loss)
        bucket = event.step * 20 // event.total if event.total else 0
        if not err.is_terminal and event.total and bucket > self.printed.get(event.phase, 0):  # steps may skip a 5% mark
            self.printed[event.phase] = bucket
            elapsed = self.progress.tasks[self.tasks[event.phase]].elapsed or 0.0
            parts = [_PHASES.get(event.phase, event.phase), f"{event.step}/{event.total}", loss, f"({elapsed:.0f} s)"]
            self.progress.console.print(" ".join(p for p in parts if p), highlight=False)


def train(
    data: str = typer.Option(..., "--data", help="'shapes' (the synthetic world) or a folder of clips with captions.jsonl."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the model, checkpoints, previews and logs."),
    steps: int = typer.Option(2000, "--steps", help="Diffusion-model optimizer steps."),
    batch: int = typer.Option(16, "--batch", help="Clips per step."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    preset: str = typer.Option("shapes", "--preset", help="Model size: shapes (64x64, 8 frames) or tiny (tests)."),
    lr: float = typer.Option(5e-4, "--lr", help="Peak learning rate (warm-up, then cosine decay)."),
    vae_steps: int = typer.Option(800, "--vae-steps", help="Autoencoder steps (phase 1)."),
    decoder_steps: int = typer.Option(0, "--decoder-steps", help="Then decoder-only steps on the frozen encoder (also on --resume)."),
    vae_jitter: float = typer.Option(0.0, "--vae-jitter",
                                     help="Scale each frame's latent by 1 +- J about the background's while the autoencoder learns (0 = off)."),
    refine_steps: int = typer.Option(0, "--refine-steps",
                                     help="After the UNet: decoder steps on the UNet's own re-renderings of training clips (also on --resume)."),
    refine_clips: int = typer.Option(1024, "--refine-clips", help="Training clips the UNet re-renders for --refine-steps."),
    clips: Optional[int] = typer.Option(None, "--clips", help="Shapes clips to generate (preset default)."),
    modifiers: float = typer.Option(0.0, "--modifiers",
                                    help="Share of shapes clips that also ask for a size and/or a speed (small, big, slowly, quickly)."),
    frames: Optional[str] = typer.Option(None, "--frames",
                                         help="Clip lengths to train on, e.g. 8,16 (each step draws one; the first is the default)."),
    checkpoint_every: int = typer.Option(250, "--checkpoint-every", help="Steps between checkpoints."),
    preview_every: int = typer.Option(500, "--preview-every", help="Steps between preview videos (OUT/previews)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed, the same result)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA with bf16 autocast when present), cpu or cuda."),
    prediction: str = typer.Option("v_prediction", "--prediction",
                                   help="v_prediction (zero-terminal-SNR schedule) or epsilon (the ModelScope/SD one)."),
    temporal_positions: bool = typer.Option(True, "--temporal-positions/--no-temporal-positions",
                                            help="Frame-position embeddings in the temporal attention (a resume can add them)."),
    clip_attention: bool = typer.Option(False, "--clip-attention/--no-clip-attention",
                                        help="Temporal self-attention across the whole clip, not one position's frames (a resume can add it)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from a model folder t2v train made (its weights and autoencoder)."),
    train_text_encoder: bool = typer.Option(True, "--train-text-encoder/--freeze-text-encoder",
                                            help="Train the text encoder with the UNet, or keep its initial weights."),
    high_noise_share: float = typer.Option(0.0, "--high-noise-share",
                                           help="Share of each batch drawn from the noisiest timesteps (0 = uniform)."),
    high_noise_from: float = typer.Option(0.75, "--high-noise-from",
                                          help="Where 'noisiest' starts, as a fraction of the schedule."),
) -> None:
    """Train a text-to-video model from scratch (autoencoder, then UNet3D + text encoder, with EMA)."""
    from t2v.train.trainer import TrainConfig, train as run  # deferred: imports numpy

    with cli_errors():
        lengths = [f.strip() for f in (frames or "").split(",") if f.strip()]
        if not all(f.isdigit() for f in lengths):
            raise InvalidRequest(f"frames: {frames!r} is not a comma-separated list of whole numbers; for example 8,16",
                                 field="frames")
        cfg = TrainConfig(data=data, frames=tuple(int(f) for f in lengths), out=out_dir, preset=preset, steps=steps, batch=batch, lr=lr, vae_steps=vae_steps,
                          vae_jitter=vae_jitter, decoder_steps=decoder_steps, refine_steps=refine_steps, refine_clips=refine_clips, clips=clips, modifiers=modifiers, checkpoint_every=checkpoint_every, preview_every=preview_every, seed=seed,
                          resume=resume, device=device, prediction=prediction,
                          temporal_positions=temporal_positions, train_text_encoder=train_text_encoder,
                          clip_attention=clip_attention, init=str(init) if init else None,
                          high_noise_share=high_noise_share, high_noise_from=high_noise_from)
        with TrainProgress() as bar:
            folder = run(cfg, bar)
        out.print(f"[green]model[/] {folder}  (try: t2v generate \"a red circle moving right\" --model {folder})", highlight=False)


def train_lora(
    base: str = typer.Option(..., "--base", help="Base model: registry id, hub id or folder."),
    data: Path = typer.Option(..., "--data", help="Folder of clips with captions.jsonl."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the adapter."),
    rank: int = typer.Option(4, "--rank", help="LoRA rank."),
    steps: int = typer.Option(300, "--steps", help="Optimiser steps."),
    batch: int = typer.Option(8, "--batch", help="Clips per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate."),
    preview: Optional[str] = typer.Option(None, "--preview", help="Prompt for OUT/preview.mp4 made with the adapter."),
    reg_data: Optional[Path] = typer.Option(None, "--reg-data",
                                            help="Regularisation clips (captions.jsonl folder): half of each batch, to keep what the base model knows."),
    reg_target: str = typer.Option("base", "--reg-target",
                                   help="What the regularisation half learns: 'base' (the base model's own prediction, distillation) or 'clips' (their noise)."),
    reg_weight: float = typer.Option(1.0, "--reg-weight", help="Weight of the regularisation half's loss."),
    conv: bool = typer.Option(False, "--conv", help="LoCon: also adapt the UNet's ResNet convolutions and conv_in/conv_out."),
    temporal: bool = typer.Option(True, "--temporal/--no-temporal", help=(
        "Adapt the UNet's temporal attention too; --no-temporal adapts the spatial layers alone.")),
    refine_steps: int = typer.Option(0, "--refine-steps",
                                     help="Then a LoRA on the VAE decoder, trained on the adapted UNet's re-renderings of the clips."),
    refine_jitter: float = typer.Option(0.0, "--refine-jitter", help=(
        "The decoder LoRA's amplitude jitter: each latent's length scaled by 1 +- J, the target the same frame, "
        "as --vae-jitter trains the autoencoder (0: off).")),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed, the same result)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
) -> None:
    """Teach a model something new with a LoRA adapter on its UNet attention layers."""
    from t2v.train.lora import LoraTrainConfig, train_lora as run  # deferred: imports numpy

    with cli_errors():
        cfg = LoraTrainConfig(base=base, data=str(data), out=out_dir, rank=rank, steps=steps, batch=batch, lr=lr,
                              seed=seed, device=device, preview_prompt=preview, conv=conv, temporal=temporal,
                              reg_data=str(reg_data) if reg_data else None, refine_steps=refine_steps,
                              reg_target=reg_target, reg_weight=reg_weight, refine_jitter=refine_jitter)
        with TrainProgress() as bar:
            folder = run(cfg, bar)
        out.print(f"[green]adapter[/] {folder}  (use: t2v generate ... --model {base} --lora {folder})", highlight=False)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _beside_table(rows, lora) -> Table:
    """The adapter's figures beside the base model's: per set, base / adapter and the change in points."""
    table = Table(title=f"with {lora} beside the base model (same prompts and seeds): base / adapter (change)")
    for col in ("set", "clips", "color", "direction", "color every frame"):
        table.add_column(col, justify="right" if col != "set" else "left")
    for name, clips, rates in rows:
        cells = []
        for key in ("color", "direction", "color_stable"):
            ours, theirs = rates[key]
            change = "" if ours is None or theirs is None else f" ({100 * (theirs - ours):+.1f})"
            cells.append(f"{_pct(ours)} / {_pct(theirs)}{change}")
        table.add_row(name, str(clips), *cells)
    return table


@eval_app.command("shapes")
def eval_shapes(
    model: str = typer.Option("t2v-shapes", "--model", "-m", help="Model to evaluate."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="One prompt per line (default: every combination)."),
    seeds: int = typer.Option(4, "--seeds", help="Seeds per prompt (K..K+N-1, K from --first-seed)."),
    first_seed: int = typer.Option(0, "--first-seed", help="The first seed (fresh seeds for a final measurement)."),
    split: str = typer.Option("all", "--split", help="Default prompts from: all, heldout or train combinations."),
    colors: Optional[str] = typer.Option(None, "--colors", help="Comma-separated colours for the default prompts (e.g. purple)."),
    modifiers: bool = typer.Option(False, "--modifiers", help="Default prompts also ask for a size and/or a speed, in turn."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per clip (the model's default)."),
    lora: Optional[Path] = typer.Option(None, "--lora", help="LoRA adapter folder."),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="How strongly --lora applies (1.0: as trained)."),
    no_base: bool = typer.Option(False, "--no-base", help="With --lora: skip the base model's run on the same "
                                 "prompts and seeds (whose figures are shown beside the adapter's)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps (model default)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Step cache NAME[:KEY=VALUE,...] (e.g. deepcache:interval=3)."),
    json_out: Path = typer.Option(Path("eval-shapes.json"), "--json-out", help="File to write the full report to, every clip's detection included."),
    interpolate: Optional[int] = option(PostSpec, "interpolate"),
    upscale: Optional[int] = option(PostSpec, "upscale"),
    deflicker: bool = option(PostSpec, "deflicker"),
) -> None:
    """Generate clips for shapes prompts and score colour, motion direction and shape with a detector (after
    post-processing, with --interpolate / --upscale / --deflicker)."""
    from t2v.train import evaluate as ev  # deferred: imports numpy
    from t2v.train import shapes  # deferred: imports numpy

    with cli_errors():
        if split not in ("all", "heldout", "train"):
            raise InvalidRequest("split: choose all, heldout or train", field="split")
        picked = tuple(c.strip() for c in colors.split(",")) if colors else None
        bad = [c for c in picked or () if c not in shapes.ALL_COLORS]
        if bad:
            raise InvalidRequest(f"colors: unknown {', '.join(bad)}; known: {', '.join(shapes.ALL_COLORS)}", field="colors")
        cases = ev.read_cases(prompts) if prompts else ev.default_cases(picked, split, modifiers)
        ev.check_options(seeds=seeds, first_seed=first_seed, cache=cache)  # before the progress bar is drawn
        progress = Progress(TextColumn("[bold]Evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)
        runs = (str(lora), None) if lora is not None and not no_base else (None if lora is None else str(lora),)
        post = post_from_flags(interpolate=interpolate, upscale=upscale, deflicker=deflicker)
        reports = []
        with progress:
            task = progress.add_task("eval", total=len(cases) * seeds * len(runs))
            for k, adapter in enumerate(runs):
                done = k * len(cases) * seeds
                reports.append(ev.evaluate(
                    model, cases, seeds=seeds, first_seed=first_seed, lora=adapter, lora_scale=lora_scale, steps=steps,
                    cache=cache, frames=frames, post=post, on_clip=lambda i, n, d=done: progress.update(task, completed=d + i)))
        report = reports[0]
        if len(reports) > 1:  # the base model's run, kept beside the adapter's
            report["base"] = {"summary": reports[1]["summary"], "rows": reports[1]["rows"]}
        ev.write_report(report, json_out)
        s = report["summary"]
        table = Table(title=f"t2v eval shapes: {model}" + (f" + {lora}" if lora else "")
                      + (f", cache {report['cache']}" if report.get("cache") else "")
                      + (f", post {report['post']}" if report.get("post") else ""))
        extra = [k for k in ("size", "speed") if s["overall"][k] is not None]  # asked by some prompts
        for col in ("set", "clips", "color", "direction", "shape", *extra, "all asked" if extra else "all three"):
            table.add_column(col, justify="right" if col != "set" else "left")
        frames = Table(title="per frame")
        for col in ("set", "clips", "color every frame", "shape every frame", "track", "no flicker", "flicker (median)"):
            frames.add_column(col, justify="right" if col != "set" else "left")
        rows = [("overall", s["overall"]), ("held-out", s["heldout"]), ("trained", s["trained"])]
        rows += [(f"  {c}", b) for c, b in s["by_color"].items()]
        for name, b in rows:
            if b["clips"]:
                table.add_row(name, str(b["clips"]), *(_pct(b[k]) for k in ("color", "direction", "shape", *extra, "all")))
                frames.add_row(name, str(b["clips"]), *(_pct(b[k]) for k in (*ev.FRAME_KEYS, "flicker_median")))
        out.print(table)
        out.print(frames)
        if len(reports) > 1:
            out.print(_beside_table(ev.beside(reports[1], report), lora))
        out.print(f"color / shape every frame: each frame reads the prompt's. track: the object is in every frame and each "
                  f"step goes the prompt's way, with no jump. no flicker: the object's brightness (luma) changes between "
                  f"frames by at most {100 * ev.FLICKER_NOISE:g}% of its mean, the detector's noise on rendered clips.",
                  highlight=False)
        out.print(f"[green]wrote[/] {json_out}", highlight=False)


@data_app.command("shapes")
def data_shapes(
    directory: Path = typer.Argument(..., help="Folder to write clip_NNNNN.mp4 + captions.jsonl into."),
    clips: int = typer.Option(64, "--clips", help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed, the same result)."),
    colors: Optional[str] = typer.Option(None, "--colors", help="Comma-separated colours (default: the base five)."),
    split: str = typer.Option("all", "--split", help="all, train or heldout combinations."),
    balanced: bool = typer.Option(False, "--balanced", help="Every combination (so every colour) equally often, in turn."),
) -> None:
    """Write a shapes data set in the folder format `t2v train --data DIR` and `train-lora` read."""
    from t2v.train import shapes  # deferred: imports numpy

    with cli_errors():
        picked = tuple(c.strip() for c in colors.split(",")) if colors else None
        bad = [c for c in picked or () if c not in shapes.ALL_COLORS]
        if bad:
            raise InvalidRequest(f"colors: unknown {', '.join(bad)}; known: {', '.join(shapes.ALL_COLORS)}", field="colors")
        if clips < 1:
            raise InvalidRequest("clips: must be at least 1", field="clips")
        if split not in ("all", "heldout", "train"):
            raise InvalidRequest("split: choose all, heldout or train", field="split")
        shapes.write_dir(directory, clips, seed=seed, split=split, colors=picked, balanced=balanced)
        out.print(f"[green]wrote[/] {clips} clips + captions.jsonl to {directory}", highlight=False)
