"""The desktop window's report: with ``T2V_DESKTOP_REPORT=FILE``, what the window shows (its state, the boxes of
its widgets on the screen, the player's picture, the error line's heights) as JSON, for automation, the
screenshot script and the tests."""

from __future__ import annotations

import json
from pathlib import Path
from tkinter import ttk
from typing import Any

from t2v.desktop.layout import screen_box, tab_boxes


def write_report(app, path: str | Path, **extra: Any) -> None:
    """Write ``app``'s report (a :class:`t2v.desktop.app.DesktopApp`) to ``path``, whole or not at all."""
    box = screen_box
    app.root.update_idletasks()
    table = app.history.table
    rows = {}
    if table.winfo_ismapped():  # the History tab is shown: each visible row's box
        for job_id in table.get_children():
            row = table.bbox(job_id)
            if row:
                rows[job_id] = [table.winfo_rootx() + row[0], table.winfo_rooty() + row[1], row[2], row[3]]
    state = {"ready": app.ready, "job": app.job_id, "status": app.status.cget("text"), "error": app.error.cget("text"),
             "models": list(app.form.models), "model": app.form.vars["model"].get(),
             "model_labels": list(app.form.model.cget("values")), "model_shown": app.form.model.get(),
             "model_note": app.form.picker.note.cget("text"),
             "compare": app.comparing.state() if app.comparing is not None and not app.comparing.closed else None,
             "frames_shown": app.player.shown, "playing": app.player.playing,
             "picture": app.player.picture_size(),  # the player's picture: its box holds it whole
             "clip": str(app.clip) if app.clip else None, "history": [j.id for j in app.history_jobs],
             "boxes": {"window": box(app.root), "prompt": box(app.form.prompt), "generate": box(app.generate_button),
                       "screen": box(app.screen), "status": box(app.status), "progress": box(app.progress),
                       "error": box(app.error), "seed_mode": box(app.form.seed_mode),
                       "seed": box(app.form.seed), "frames": box(app.form.spins["num_frames"]),
                       "compare_button": box(app.history.compare_button), "tabs": tab_boxes(app.tabs),
                       "history_rows": rows, **{f"button:{b.cget('text') if isinstance(b, (ttk.Button, ttk.Label)) else 'priority'}": box(b)
                                                 for b in app.steering}},
             # the error line's height as laid out and as its wrapped text needs: less is a cut-off line
             "error_height": [app.error.winfo_height(), app.error.winfo_reqheight()], **extra}
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
