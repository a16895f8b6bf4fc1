"""Colour drift over a long clip: the mean colour of its first and of its last second, for a 30-second clip made
natively by diffusion forcing (a tiny random-weight SkyReels-V2 DF model) and in segments (t2v-shapes).

    python scripts/long_drift.py [--seconds 30] [--json out.json]

Prints, per clip: frames, seconds to make, the mean RGB (0-255) of the first and the last second, their
difference per channel and its length. docs/post.md quotes the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def drift(frames: np.ndarray, fps: float) -> dict:
    n = max(1, int(round(fps)))
    first, last = frames[:n].reshape(-1, 3).mean(0), frames[-n:].reshape(-1, 3).mean(0)
    delta = last - first
    return {"frames": int(frames.shape[0]), "first_rgb": [round(float(x), 1) for x in first],
            "last_rgb": [round(float(x), 1) for x in last], "delta_rgb": [round(float(x), 1) for x in delta],
            "drift": round(float(np.linalg.norm(delta)), 2)}


def main() -> None:
    from t2v import generate
    from t2v.families import make_tiny_model
    from t2v.requests import GenerationRequest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        df = make_tiny_model("skyreels-v2-df", Path(tmp) / "df", seed=0)
        cases = {
            "diffusion forcing (tiny SkyReels-V2 DF, one run)": GenerationRequest(
                model=str(df), prompt="a still mountain lake at dawn, static camera", seconds=args.seconds, seed=0,
                formats=()),
            "segments (t2v-shapes)": GenerationRequest(
                model="t2v-shapes", prompt="a red circle moving right", seconds=args.seconds, seed=0, formats=()),
        }
        for name, request in cases.items():
            t0 = time.perf_counter()
            result = generate(request, progress=False)
            fps = result.record["fps"]
            out[name] = {**drift(result.frames, fps), "fps": fps, "make_s": round(time.perf_counter() - t0, 1),
                         "long": {k: v for k, v in (result.record.get("long") or {}).items() if k != "segments"}}
            print(name, json.dumps(out[name]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
