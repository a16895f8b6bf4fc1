"""``t2v bench``: stock diffusers vs t2v on a tiny model, reported per stage; bad input exits 2 in one line.

Adds about a minute and a half: each bench runs stock diffusers and t2v side by side in fresh processes, as ``t2v bench``
does, and compares their frames."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from t2v.bench import STAGES
from t2v.bench.report import STAGE_LABELS
from t2v.cli import app

runner = CliRunner()


def test_bench_compares_both_sides_and_the_default_plan_on_the_tiny_model(tmp_path):
    report = tmp_path / "bench.json"
    # 32x32 (8x8 latents) keeps the fresh processes' work small; the time is mostly imports.
    r = runner.invoke(app, ["bench", "--runs", "1", "--size", "32", "--default-plan", "--json-out", str(report)])
    assert r.exit_code == 0, r.output

    # The per-stage table: every stage, both medians and a numeric t2v / stock ratio on each row, and the
    # default plan's median and ratio beside them.
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in STAGE_LABELS.values():
            rows[cells[0]] = cells
    duration = r"\d[\d,]*(\.\d+)? m?s"
    for key in (*STAGES, "total", "process"):
        label = STAGE_LABELS[key]
        assert label in rows, f"no {key} row in:\n{r.stdout}"
        _, stock, ours, ratio, default, default_ratio = rows[label]
        assert all(re.fullmatch(duration, cell) for cell in (stock, ours, default))
        assert all(x == "nan" or float(x) >= 0 for x in (ratio, default_ratio))
    assert float(rows[STAGE_LABELS["total"]][3]) > 0  # end to end always takes time on both sides
    assert re.search(r"t2v is \d+\.\d\dx stock end to end", r.stdout)

    data = json.loads(report.read_text())
    runs = {run["tag"]: run for run in data["runs"]}
    assert list(runs) == ["stock-1", "t2v-1", "auto-1"] and [w["tag"] for w in data["warmup"]] == ["auto-warmup"]
    for run in runs.values():
        assert set(STAGES) <= set(run["times"]) and run["times"]["total"] > 0 and run["rss_peak"] > 0
        assert run["steps"] == 2
    summary = data["summary"]
    assert summary["n_stock"] == summary["n_t2v"] == summary["n_auto"] == 1
    assert summary["speedup"] == pytest.approx(summary["stock"]["total"] / summary["t2v"]["total"])
    # Same seed, same scheduler, same empty negative prompt: the two sides made the same 8 frames.
    same = summary["same_frames"]
    assert same["shape"] == [8, 32, 32, 3]
    assert same["max"] <= 1, same
    assert ("identical" if same["identical"] else "max diff") in r.stdout

    # The default plan is what t2v picks on this machine: the tests pin T2V_CPU_BF16=0, the default plan's run
    # does not.
    assert "T2V_CPU_BF16" not in runs["auto-1"]["dtype_reason"] and runs["auto-1"]["dtype_reason"].startswith("auto: ")
    assert runs["t2v-1"]["dtype"] == "fp32" and runs["auto-1"]["plan"]["dtype"] == "auto"
    assert summary["auto_dtype"] == runs["auto-1"]["dtype"]
    assert summary["auto_speedup"] == pytest.approx(summary["stock"]["total"] / summary["auto"]["total"])
    assert summary["auto_rss_ratio"] == pytest.approx(runs["auto-1"]["rss_peak"] / runs["stock-1"]["rss_peak"])
    assert runs["auto-1"]["frame_diff_vs_fp32"]["shape"] == [8, 32, 32, 3]
    assert f"t2v default plan ({summary['auto_dtype']}, " in r.stdout
    assert any(line.startswith("t2v's default plan") for line in r.stdout.splitlines())


@pytest.mark.parametrize("args, expect", [
    (["--runs", "0"], "--runs must be at least 1"),
    (["--size", "30"], "--size must be a multiple of 8"),
    (["--model", "{not_model}"], "no model_index.json"),
    (["--model", "{missing}"], "does not exist"),
    (["--json-out", "{missing}/out.json"], "does not exist"),
    (["--family", "nope"], "--family: unknown or not a text-to-video family 'nope'; choose one of: animatediff,"),
    (["--family", "sd"], "not a text-to-video family"),
    # Wan takes the DiT caches, not the UNet's DeepCache: refused by the family before anything is built.
    (["--family", "wan", "--t2v-cache", "deepcache"], "--t2v-cache: the tiny wan model (wan) cannot use the deepcache"),
    (["--family", "wan", "--t2v-cache", "bogus"], "--t2v-cache: unknown step cache 'bogus'"),
    (["--family", "wan", "--frames", "8"], "num_frames: 8 is not 4k+1, which this model needs; nearest valid: 9"),
    (["--family", "wan", "--size", "40"], "width: 40 is not a multiple of 16"),
    (["--t2v-dtype", "int3"], "unknown dtype 'int3'"),
    (["--model", "{wan}", "--family", "ltx"], "is a wan model; leave --family out with --model"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, expect):
    not_model = tmp_path / "notes"
    not_model.mkdir()
    (not_model / "readme.txt").write_text("not a model")
    wan = tmp_path / "wan"
    if "{wan}" in args:
        from tests.tinymodels import make_tiny_model

        make_tiny_model("wan", wan, fp16_variant=False)
    args = [a.format(not_model=not_model, missing=tmp_path / "missing", wan=wan) for a in args]
    r = runner.invoke(app, ["bench", *args])
    assert r.exit_code == 2, r.output
    message = r.stderr.strip()
    assert expect in message and len(message.splitlines()) == 1, message
    assert "Traceback" not in r.output and r.stdout == ""


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The per-stage table's rows by label (4 cells), and its header under "header"."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and line.startswith("| "):
            rows["header" if cells[0] == "Stage" else cells[0]] = cells
    return rows


def test_bench_another_family_against_its_own_stock_pipeline(tmp_path):
    """``--family wan``: the tiny Wan 2.1 model through stock ``WanPipeline`` and through t2v, same frames."""
    report = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "--family", "wan", "--runs", "1", "--json-out", str(report)])
    assert r.exit_code == 0, r.output
    rows = table_rows(r.stdout)
    assert rows["header"][1:3] == ["stock diffusers (fp32)", "t2v (fp32)"]
    for label in ("denoise, per step", "VAE decode (9 frames)", "**end to end** (load to file written)"):
        _, stock, ours, ratio = rows[label]
        assert re.fullmatch(r"\d[\d,]*(\.\d+)? m?s", stock) and re.fullmatch(r"\d[\d,]*(\.\d+)? m?s", ours)
        assert float(ratio) > 0
    assert "(wan, 64x32, 9 frames, 2 steps" in r.stdout

    data = json.loads(report.read_text())
    summary = data["summary"]
    assert summary["request"]["family"] == "wan" and summary["request"]["scheduler"] == "model"
    assert summary["request"]["stock_extra"] == {"max_sequence_length": 512}
    assert sorted(run["side"] for run in data["runs"]) == ["stock", "t2v"]
    stock_run = next(run for run in data["runs"] if run["side"] == "stock")
    # Wan calls its transformer once per guidance branch: 2 steps x 2 calls, all timed by the hooks.
    assert len(stock_run["denoiser_calls"]) == 4 and stock_run["steps"] == 2
    same = summary["same_frames"]
    assert same["shape"] == [9, 32, 64, 3]
    assert same["max"] <= 2 and same["check"] == "pass", same


def test_with_a_step_cache_the_frame_difference_is_information_not_a_failure(tmp_path):
    """``--t2v-cache``: t2v skips work stock does, so different frames are reported (with the reason), exit 0."""
    report = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "--family", "wan", "--t2v-cache", "fbc:threshold=0.5", "-q", "--json-out", str(report)])
    assert r.exit_code == 0, r.output
    assert table_rows(r.stdout)["header"][2] == "t2v (fp32, cache fbc:threshold=0.5)"
    same = json.loads(report.read_text())["summary"]["same_frames"]
    assert same["check"] == "info" and same["reason"] == "t2v used the step cache fbc:threshold=0.5", same
    assert same["max"] > 0  # the cache did skip a block pass (threshold 0.5 on 2 steps), yet nothing failed
    assert f"max diff {same['max']}," in r.stdout and "for information only: t2v used the step cache" in r.stdout
    assert "warning" not in r.stderr


def dry_run(script: str, tmp_path, *args: str):
    """``benchmarks/SCRIPT --dry`` on a tiny Wan: (the finished process, its JSON report)."""
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / script
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(path), "--dry", "--models", "wan", *args, "--workdir",
                           str(tmp_path / "models"), "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads(out.read_text())


def test_the_gpu_benchmark_runs_its_plumbing_on_the_cpu(tmp_path):
    """benchmarks/gpu.py is only ever timed on a lent GPU, with little device time: its --dry run (tiny models, CPU,
    2 steps) keeps it working in between, stock and t2v side by side with the same frames."""
    done, report = dry_run("gpu.py", tmp_path, "--plans", "same,cache")
    assert report["dry"] is True and report["peak_flops"] > 0
    [model] = report["models"]
    assert model["model"] == "wan" and model["flops_per_step"] > 0 and model["denoise_floor_s"] > 0
    runs = {r["plan"]: r for r in model["runs"]}
    assert set(runs) == {"stock", "same", "cache"}
    assert runs["same"]["max_diff_vs_stock"] == 0  # t2v at the stock settings: the stock frames
    assert runs["same"]["memory_plan"] == "speed" and runs["cache"]["options"]["cache"].startswith("fbc")
    assert all(r["run_s"] > 0 and r["speedup_vs_stock"] > 0 for r in runs.values())
    assert "| wan |" in done.stdout  # the markdown table docs/benchmarks.md takes


def test_the_capped_gpu_benchmark_runs_its_plumbing_on_the_cpu(tmp_path):
    """benchmarks/gpu_capped.py --dry: the resident run and the capped run (memory auto under a budget) side by
    side on a tiny Wan, the planner's prediction beside each, the same frames (on the CPU both plans are one)."""
    done, report = dry_run("gpu_capped.py", tmp_path, "--cap-gib", "0.5")
    [model] = report["models"]
    resident, capped = model["resident"], model["capped"]
    assert resident["plan"] == "speed" and "error" not in capped, capped
    assert resident["predicted_peak_gib"] > 0 and capped["predicted_peak_gib"] > 0
    assert capped["max_diff_vs_resident"] == 0 and capped["time_vs_resident"] > 0
    assert "| wan |" in done.stdout and "| capped |" in done.stdout
