"""``t2v bench``: stock diffusers vs t2v on a tiny model, reported per stage; bad input exits 2 in one line."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from t2v.bench import STAGES
from t2v.bench.report import STAGE_LABELS
from t2v.cli import app

runner = CliRunner()


def test_bench_compares_both_sides_on_the_tiny_model(tmp_path):
    report = tmp_path / "bench.json"
    # 32x32 (8x8 latents) keeps the four fresh processes' work small; the time is mostly imports.
    r = runner.invoke(app, ["bench", "--runs", "1", "--size", "32", "--json", str(report)])
    assert r.exit_code == 0, r.output

    # The per-stage table: every stage, both medians and a numeric t2v / stock ratio on each row.
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in STAGE_LABELS.values():
            rows[cells[0]] = cells
    for key in (*STAGES, "total", "process"):
        label = STAGE_LABELS[key]
        assert label in rows, f"no {key} row in:\n{r.stdout}"
        _, stock, ours, ratio = rows[label]
        assert re.fullmatch(r"\d[\d,]*(\.\d+)? m?s", stock) and re.fullmatch(r"\d[\d,]*(\.\d+)? m?s", ours)
        assert ratio == "nan" or float(ratio) >= 0
    assert float(rows[STAGE_LABELS["total"]][3]) > 0  # end to end always takes time on both sides
    assert re.search(r"t2v is \d+\.\d\dx stock end to end", r.stdout)

    data = json.loads(report.read_text())
    runs = data["runs"]
    assert sorted(run["side"] for run in runs) == ["stock", "t2v"]
    for run in runs:
        assert set(STAGES) <= set(run["times"]) and run["times"]["total"] > 0 and run["rss_peak"] > 0
        assert run["steps"] == 2
    summary = data["summary"]
    assert summary["n_stock"] == summary["n_t2v"] == 1
    assert summary["speedup"] == pytest.approx(summary["stock"]["total"] / summary["t2v"]["total"])
    # Same seed, same scheduler, same empty negative prompt: the two sides made the same 8 frames.
    same = summary["same_frames"]
    assert same["shape"] == [8, 32, 32, 3]
    assert same["max"] <= 1, same
    assert ("identical" if same["identical"] else "max diff") in r.stdout


@pytest.mark.parametrize("args, expect", [
    (["--runs", "0"], "--runs must be at least 1"),
    (["--size", "30"], "--size must be a multiple of 8"),
    (["--model", "{not_model}"], "no model_index.json"),
    (["--model", "{missing}"], "does not exist"),
    (["--json", "{missing}/out.json"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, expect):
    not_model = tmp_path / "notes"
    not_model.mkdir()
    (not_model / "readme.txt").write_text("not a model")
    args = [a.format(not_model=not_model, missing=tmp_path / "missing") for a in args]
    r = runner.invoke(app, ["bench", *args])
    assert r.exit_code == 2, r.output
    message = r.stderr.strip()
    assert expect in message and len(message.splitlines()) == 1, message
    assert "Traceback" not in r.output and r.stdout == ""
