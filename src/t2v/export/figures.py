"""Figures for looking inside a run: a contact sheet of frames and a denoising grid (Matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from t2v.export.writers import atomic_path

GRID_DPI = 100
GRID_CELL_IN = 1.6  # inches per image cell: a cell is GRID_CELL_IN * GRID_DPI pixels


def sheet_layout(count: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a contact sheet for ``count`` frames (about square when ``columns`` is None)."""
    cols = columns or max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / cols), cols


def contact_sheet(frames: np.ndarray, path: Path, *, columns: int | None = None, pad: int = 2,
                  background: int = 24) -> tuple[int, int]:
    """Write a PNG grid of ``frames`` (F, H, W, 3) uint8, row by row; returns (rows, columns).

    The sheet is ``cols * (W + pad) + pad`` by ``rows * (H + pad) + pad`` pixels.
    """
    from PIL import Image

    f, h, w = frames.shape[:3]
    rows, cols = sheet_layout(f, columns)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), background, dtype=np.uint8)
    for i in range(f):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y : y + h, x : x + w] = frames[i]
    with atomic_path(Path(path)) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return rows, cols


def denoise_grid(rows: list[tuple[str, list[tuple[int, np.ndarray]]]], path: Path, *, total_steps: int,
                 title: str = "predicted clean image during denoising") -> tuple[int, int]:
    """Write a Matplotlib figure: one row per generated frame, one column per chosen step.

    ``rows`` is ``[(label, [(step, image uint8 HxWx3), ...]), ...]``. The PNG is exactly
    ``cols * GRID_CELL_IN * GRID_DPI`` by ``rows * GRID_CELL_IN * GRID_DPI`` pixels. Returns (rows, columns).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), max(len(images) for _, images in rows)
    fig = Figure(figsize=(n_cols * GRID_CELL_IN, n_rows * GRID_CELL_IN), dpi=GRID_DPI)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                step, img = images[c]
                ax.imshow(img)
                if r == 0:
                    ax.set_title(f"step {step}/{total_steps}", fontsize=8)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.02, wspace=0.05, hspace=0.15)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=GRID_DPI)
    return n_rows, n_cols
