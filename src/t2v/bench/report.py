"""Markdown tables and one-line verdicts for :mod:`t2v.bench.cpu` results (the same as docs/benchmarks.md)."""

from __future__ import annotations

from t2v.bench import NUM_FRAMES, STAGES
from t2v.bench.spec import plan_label

MiB = 2**20
STAGE_LABELS = {
    "load": "load (from_pretrained / load_model)",
    "text_encode": "text encode (prompt + negative)",
    "denoise": "denoise, per step",
    "decode": f"VAE decode ({NUM_FRAMES} frames)",
    "encode": "encode MP4",
    "other": "other (planning, pipeline glue, post-processing)",
    "total": "**end to end** (load to file written)",
    "process": "process wall time (incl. Python + imports)",
}


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x >= 1 else f"{x * 1000:.0f} ms"


def stage_label(key: str, summary: dict) -> str:
    """The row label of ``key``: STAGE_LABELS, with the decode row naming the request's frame count."""
    frames = summary.get("request", {}).get("num_frames", NUM_FRAMES)
    return f"VAE decode ({frames} frames)" if key == "decode" else STAGE_LABELS[key]


def table(summary: dict) -> str:
    """Per stage: medians of each side and t2v / stock (below 1: t2v is faster or smaller)."""
    s, t, a = summary["stock"], summary["t2v"], summary.get("auto")
    plan = plan_label(summary["plan"]) if summary.get("plan") else "fp32"
    head = f"| Stage | stock diffusers (fp32) | t2v ({plan}) | t2v / stock |"
    rule = "|---|---:|---:|---:|"
    if a:
        head += f" t2v default plan ({summary['auto_dtype']}, {summary['auto_plan']}) | default / stock |"
        rule += "---:|---:|"
    rows = [head, rule]

    def ratio(x: float, base: float) -> str:
        return f"{x / base:.2f}" if base > 0.0005 else "nan"

    for k in (*STAGES, "total", "process"):
        row = f"| {stage_label(k, summary)} | {fmt_s(s[k])} | {fmt_s(t[k])} | {ratio(t[k], s[k])} |"
        rows.append(row + (f" {fmt_s(a[k])} | {ratio(a[k], s[k])} |" if a else ""))
    row = (f"| **peak RSS** (ru_maxrss) | {summary['stock_rss'] / MiB:,.0f} MiB | {summary['t2v_rss'] / MiB:,.0f} MiB "
           f"| {summary['rss_ratio']:.2f} |")
    rows.append(row + (f" {summary['auto_rss'] / MiB:,.0f} MiB | {summary['auto_rss_ratio']:.2f} |" if a else ""))
    return "\n".join(rows)


def verdict(summary: dict) -> list[str]:
    """The speed-up, memory ratio and frame agreement in words."""
    d = summary["same_frames"]
    same = "identical" if d["identical"] else f"max diff {d['max']}, mean {d['mean']:.4f} (of 255)"
    if d.get("check") == "info":
        same += f"; for information only: {d['reason']}"
    elif d.get("check") == "fail":
        same += f"; FAILED: the same computation must give frames within {d['tolerance']}/255"
    lines = [f"t2v is {summary['speedup']:.2f}x stock end to end; peak RSS {summary['rss_ratio']:.0%} of stock",
             f"frames, stock vs t2v (same seed): {same}"]
    if summary.get("auto"):
        lines.append(f"t2v's default plan ({summary['auto_dtype']}, memory plan {summary['auto_plan']}) is "
                     f"{summary['auto_speedup']:.2f}x stock end to end; peak RSS {summary['auto_rss_ratio']:.0%} of stock")
    return lines


def runs_table(results: list[dict]) -> str:
    rows = ["| Run | side | end to end | denoise/step | decode | load | peak RSS | RSS peak: load / denoise / decode "
            "| load avg before | other processes during the run |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        t, sp = r["times"], r["rss_stage_peak"]
        side = r["side"] if r["side"] == "stock" else f"t2v {r['dtype']} plan={r['plan_used']}"
        extra = r.get("plan") or {}
        side += "".join(f", {k} {extra[k]}" for k in ("cache", "attention") if extra.get(k) not in (None, "auto"))
        side += ", compiled" if extra.get("compile") else ""
        if r["tag"].startswith("mmap128-"):
            side += ", mmap threshold 128 KiB"
        if r["tag"].startswith("auto-"):
            side += " (default plan)"
        stage_rss = " / ".join(f"{sp.get(k, 0) / MiB:,.0f}" for k in ("load", "denoise", "decode"))
        rows.append(f"| {r['tag']} | {side} | {fmt_s(t['total'])} | {fmt_s(t['denoise'] / r['steps'])} | {fmt_s(t['decode'])} "
                    f"| {fmt_s(t['load'])} | {r['rss_peak'] / MiB:,.0f} MiB | {stage_rss} MiB | {r['machine_load']['load1']} "
                    f"| {r['others_cores']:.2f} cores |")
    return "\n".join(rows)


def planner_table(results: list[dict]) -> str:
    """The planner's prediction (made inside generate(), kept in the record) vs the run's measured peak RSS."""
    rows = ["| Run | plan | dtype | predicted peak RSS | measured peak RSS (ru_maxrss) | predicted / measured |",
            "|---|---|---|---:|---:|---:|"]
    for r in results:
        if r["side"] != "t2v":
            continue
        pred = r["memory_plan"]["predicted_peak_mb"]
        meas = r["rss_peak"] / MiB
        rows.append(f"| {r['tag']} | {r['plan_used']} ({r['memory_plan']['requested']}) | {r['dtype']} | {pred:,.0f} MiB "
                    f"| {meas:,.0f} MiB | {pred / meas:.2f} ({(pred - meas) / meas:+.0%}) |")
    return "\n".join(rows)
