"""``t2v bench``: the same request through stock diffusers and through t2v, side by side, on this machine."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from t2v.cli.common import cli_errors, err, out
from t2v.bench import cpu, report
from t2v.bench.spec import plan_fields
from t2v.requests import ATTENTION


def bench(
    runs: int = typer.Option(1, "--runs", "-r", help="Runs per side, alternating stock, t2v, stock, ... (medians are reported)."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="A model folder in the diffusers layout (default: a tiny random-weight model, built in seconds)."
    ),
    family: Optional[str] = typer.Option(
        None, "--family", "-f", help="Model family of the tiny model to build (default modelscope; the kinds of "
        "`t2v models make-tiny --family` that make text-to-video). With --model: the folder's own family."),
    size: Optional[int] = typer.Option(None, "--size", help="Width and height in pixels (ModelScope: default 64 for the tiny "
                                       "model, 256 with --model; other families: the folder's defaults)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames (default 8 for ModelScope, else the folder's default; "
                                         "the family's rules apply, e.g. 4k+1 for Wan)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps (default 2)."),
    t2v_dtype: str = typer.Option("fp32", "--t2v-dtype", help="t2v side: dtype (fp32 as stock; auto, bf16, fp16)."),
    t2v_memory: str = typer.Option("auto", "--t2v-memory", help="t2v side: memory plan (auto, speed, balanced, low)."),
    t2v_cache: Optional[str] = typer.Option(None, "--t2v-cache", help="t2v side: step cache NAME[:KEY=VALUE,...] "
                                            "(frames then differ from stock by design: reported, not checked)."),
    t2v_attention: str = typer.Option("auto", "--t2v-attention", help=f"t2v side: attention kernel ({', '.join(ATTENTION)})."),
    t2v_compile: bool = typer.Option(False, "--t2v-compile", help="t2v side: torch.compile the denoiser's repeated blocks."),
    default_plan: bool = typer.Option(False, "--default-plan", help="Also run t2v's default plan each round (dtype and "
                                      "memory plan as t2v picks them on this machine, after one untimed warm-up run), "
                                      "in its own columns against stock."),
    json_path: Optional[Path] = typer.Option(None, "--json-out", help="Also write the summary and every run to this JSON file."),
    max_wait: float = typer.Option(0.0, "--max-wait", help="Seconds to wait before each run for a quiet machine (1-min load <= --max-load)."),
    max_load: float = typer.Option(1.0, "--max-load", help="Load average that counts as quiet (with --max-wait)."),
    retries: int = typer.Option(0, "--retries", help="Redo a run up to this many times when other processes used > 0.25 cores during it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the table and the verdict, no progress lines."),
) -> None:
    """Compare t2v with stock diffusers on this machine: per-stage times, t2v/stock ratios, peak memory, same frames.

    Each run is a fresh process, alternating stock and t2v.
    ModelScope (default): 8 frames, 2 DDIM steps, guidance 9, seed 0, MP4, fp32 on the CPU.
    Other families (--family): 2 steps of the model's scheduler; the folder's size, frames, guidance.
    The stock side is the folder's own diffusers pipeline; the --t2v-* options make t2v's plan.
    It never fails because of a timing. It exits 1 when t2v ran the stock computation
    (no step cache, fp32, the speed plan) and its frames are more than 2/255 from stock's.
    """
    with cli_errors():
        plan = plan_fields(dtype=t2v_dtype, memory=t2v_memory, cache=t2v_cache, attention=t2v_attention, compile=t2v_compile)
        cpu.check_options(runs=runs, size=size, model=model, max_wait=max_wait, retries=retries, json_path=json_path,
                          frames=frames, steps=steps, family=family, plan=plan)
        log = (lambda msg: None) if quiet else (lambda msg: err.print(msg, markup=False, highlight=False))
        result = cpu.run_small(runs=runs, model=model, size=size, max_load=max_load, max_wait=max_wait,
                               retries=retries, log=log, family=family, frames=frames, steps=steps, plan=plan,
                               default_plan=default_plan)
        summary = result["summary"]
        n, req = summary["n_stock"], summary["request"]
        shape = (f"{req['size']}px" if req.get("square") else
                 f"{req['family']}, {req['width']}x{req['height']}, {req['num_frames']} frames, {req['num_inference_steps']} steps")
        out.print(f"\nMedians of {n} run{'s' if n > 1 else ''} per side ({shape}, "
                  f"t2v / stock below 1 means t2v is faster or smaller):\n", highlight=False, markup=False)
        out.print(report.table(summary), markup=False, highlight=False, soft_wrap=True)
        out.print("\n" + "\n".join(report.verdict(summary)), markup=False, highlight=False, soft_wrap=True)
        failed = summary["same_frames"]["check"] == "fail"
        if failed:
            err.print("[yellow]warning:[/] stock and t2v made different frames; the two sides did not compute the same thing",
                      highlight=False)
        if summary["max_others_cores"] > 0.25:
            err.print(f"[yellow]note:[/] other processes used up to {summary['max_others_cores']:.2f} cores during a run; "
                      "the times carry that noise (see --max-wait, --retries)", highlight=False)
        if not quiet:
            out.print("\nper run:\n" + report.runs_table(result["runs"]), markup=False, highlight=False, soft_wrap=True)
        if json_path is not None:
            _write_json(json_path.expanduser(), result)
            if not quiet:
                out.print(f"wrote {json_path}", markup=False, highlight=False)
        if failed:
            raise typer.Exit(1)


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
