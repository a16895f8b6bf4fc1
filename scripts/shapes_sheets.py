"""Contact sheet of one prompt across seeds for two models side by side (docs/model-card.md's v4 / v5 sheet).

    .venv/bin/python scripts/shapes_sheets.py [--prompt "a red circle moving right"] [--seeds 8]
        [--models t2v-shapes@v4,t2v-shapes] [--out docs/screenshots/shapes-v4-v5.png]

One row per seed (0..N-1); each row holds the first model's frames, a blank cell, the second model's frames.
Prints the colour the shapes detector reads in each frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from t2v import generate
from t2v.export.figures import contact_sheet
from t2v.requests import GenerationRequest
from t2v.train.detect import detect


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", default="a red circle moving right")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--models", default="t2v-shapes@v4,t2v-shapes")
    ap.add_argument("--scale", type=int, default=2, help="Upscale each frame this many times (nearest).")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots/shapes-v4-v5.png"))
    args = ap.parse_args()
    models = args.models.split(",")
    rows = []
    for seed in range(args.seeds):
        row = []
        for i, model in enumerate(models):
            frames = generate(GenerationRequest(prompt=args.prompt, model=model, seed=seed, formats=())).frames
            print(f"seed {seed} {model}: {' '.join(detect(frames).frame_colors)}")
            if i:
                row.append(np.full_like(frames[:1], 24))
            row.append(frames)
        rows.append(np.concatenate(row))
    cells = np.concatenate(rows)
    if args.scale > 1:
        cells = cells.repeat(args.scale, axis=1).repeat(args.scale, axis=2)
    per_row = len(rows[0])
    contact_sheet(cells, args.out, columns=per_row)
    print(f"wrote {args.out} ({args.seeds} rows x {per_row} cells)")


if __name__ == "__main__":
    main()
