"""Longer videos on the shipped t2v-shapes model: the seams, the continuation strengths, a prompt schedule and the
time per segment, with contact sheets for docs/post.md.

    .venv/bin/python benchmarks/bench_extend.py [--out docs/post]

For each continue strength: a clip of "a red circle moving right" (seed 1) extended by 2 s, then
- the largest frame-to-frame change at a seam over the clip's own median change (1.0: as smooth as the clip);
- where the circle is in the first new frames against where the clip left it (a jump back means the
  continuation redrew it from the start);
and the time of a whole 3-second video (median of 3) against one 8-frame clip, per segment.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

RIGHT = "a red circle moving right"


def red_x(frame):
    f = frame.astype(int)
    mask = (f[..., 0] > 110) & (f[..., 1] < 90) & (f[..., 2] < 90)
    return float(np.nonzero(mask)[1].mean()) if mask.sum() >= 4 else None


def main() -> None:
    from t2v.export.figures import contact_sheet
    from t2v import generate
    from t2v.requests import GenerationRequest

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    clip = generate(GenerationRequest(model="t2v-shapes", prompt=RIGHT, seed=1, formats=()))
    own = float(np.median(np.abs(np.diff(clip.frames.astype(float), axis=0)).mean(axis=(1, 2, 3))))
    print(f"clip: red x {red_x(clip.frames[0]):.1f} -> {red_x(clip.frames[-1]):.1f}; median frame change {own:.2f}")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        from t2v.export import write_video

        path = Path(tmp) / "clip.mp4"
        write_video(clip.frames, path, "mp4", 8, crf=1)
        print("| continue strength | seam change / clip's own | red x: clip's last -> first new frames |")
        print("| --- | --- | --- |")
        for strength in (0.5, 0.6, 0.7, 0.8, 0.9):
            r = generate(GenerationRequest(model="t2v-shapes", prompt=RIGHT, seed=7, seconds=2, extend=str(path),
                                           continue_strength=strength, formats=()))
            long, v = r.record["long"], r.frames
            step = np.abs(np.diff(v.astype(float), axis=0)).mean(axis=(1, 2, 3))
            seams = [s["frames"][0] + k for s in long["segments"] for k in range(long["overlap"] + 1)]
            worst = max(step[i - 1] for i in seams if 0 < i < len(v)) / own
            xs = ", ".join("-" if x is None else f"{x:.0f}" for x in map(red_x, v[8:12]))
            print(f"| {strength} | {worst:.2f} | {red_x(clip.frames[-1]):.0f} -> {xs} |")
            if strength == 0.7 and args.out:
                contact_sheet(v, args.out / "extend.png", columns=8)
    sched = generate(GenerationRequest(model="t2v-shapes", prompt="shapes", seed=2, formats=(),
                                       prompt_schedule=["0: " + RIGHT, "16: a blue square moving up"]))
    if args.out:
        contact_sheet(sched.frames, args.out / "schedule.png", columns=8)

    def timed(**fields) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            generate(GenerationRequest(model="t2v-shapes", prompt=RIGHT, seed=3, formats=(), **fields))
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    one, long3 = timed(), timed(seconds=3)
    segs = 1 + -(-(24 - 8) // 4)
    print(f"time: one clip {one:.2f} s; 3 s ({segs} segments) {long3:.2f} s = {long3 / one:.2f}x, "
          f"{long3 / segs:.2f} s a segment")


if __name__ == "__main__":
    main()
