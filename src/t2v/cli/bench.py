"""``t2v bench``: the same request through stock diffusers and through t2v, side by side, on this machine."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from t2v.cli.common import cli_errors, err, out


def bench(
    runs: int = typer.Option(1, "--runs", "-r", help="Runs per side, alternating stock, t2v, stock, ... (medians are reported)."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="A model folder in the diffusers layout (default: a tiny random-weight model, built in seconds)."
    ),
    size: Optional[int] = typer.Option(None, "--size", help="Width and height in pixels (default 64 for the tiny model, 256 with --model)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the summary and every run to this JSON file."),
    max_wait: float = typer.Option(0.0, "--max-wait", help="Seconds to wait before each run for a quiet machine (1-min load <= --max-load)."),
    max_load: float = typer.Option(1.0, "--max-load", help="Load average that counts as quiet (with --max-wait)."),
    retries: int = typer.Option(0, "--retries", help="Redo a run up to this many times when other processes used > 0.25 cores during it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the table and the verdict, no progress lines."),
) -> None:
    """Compare t2v with stock diffusers on this machine: per-stage times, t2v/stock ratios, peak memory, same frames.

    Each run is a fresh process: 8 frames, 2 DDIM steps, guidance 9, seed 0, MP4, fp32 on the CPU.
    It reports the timings; it never fails because of one.
    """
    from t2v.bench import cpu, report

    with cli_errors():
        cpu.check_options(runs=runs, size=size, model=model, max_wait=max_wait, retries=retries, json_path=json_path)
        log = (lambda msg: None) if quiet else (lambda msg: err.print(msg, markup=False, highlight=False))
        result = cpu.run_small(runs=runs, model=model, size=size, max_load=max_load, max_wait=max_wait,
                               retries=retries, log=log)
        summary = result["summary"]
        n = summary["n_stock"]
        out.print(f"\nMedians of {n} run{'s' if n > 1 else ''} per side ({summary['request']['size']}px, "
                  f"t2v / stock below 1 means t2v is faster or smaller):\n", highlight=False, markup=False)
        out.print(report.table(summary), markup=False, highlight=False, soft_wrap=True)
        out.print("\n" + "\n".join(report.verdict(summary)), markup=False, highlight=False, soft_wrap=True)
        if not summary["same_frames"]["identical"] and summary["same_frames"]["max"] > 1:
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


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
