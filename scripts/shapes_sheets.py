"""Contact sheet of prompts across seeds for models side by side (docs/model-card.md's sheets).

    .venv/bin/python scripts/shapes_sheets.py [--prompt "a red circle moving right"] [--seeds 8] [--frames N]
        [--models t2v-shapes@v4,t2v-shapes@v5,t2v-shapes] [--out docs/screenshots/shapes-versions.png]

``--prompt`` may hold several prompts separated by ";". One row per prompt and seed (0..N-1); each row holds
each model's frames, a blank cell between models. Prints what the shapes detector reads in each frame.
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
    ap.add_argument("--models", default="t2v-shapes@v4,t2v-shapes@v5,t2v-shapes")
    ap.add_argument("--frames", type=int, default=None, help="Frames per clip (the model's default).")
    ap.add_argument("--scale", type=int, default=2, help="Upscale each frame this many times (nearest).")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots/shapes-versions.png"))
    args = ap.parse_args()
    models = args.models.split(",")
    rows = []
    for prompt, seed in [(p.strip(), s) for p in args.prompt.split(";") for s in range(args.seeds)]:
        row = []
        for i, model in enumerate(models):
            frames = generate(GenerationRequest(prompt=prompt, model=model, seed=seed, formats=(),
                                                num_frames=args.frames)).frames
            d = detect(frames)
            print(f"{prompt!r} seed {seed} {model}: {d.size} {d.speed} {' '.join(map(str, d.frame_colors))}")
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
