"""The form's "Your video" rows: a clip of the user's own (Browse…, Clear; mp4, webm or gif) and what to do with it
(:mod:`t2v.frontend.sources`): video-to-video at a Strength, extend, or post-processing only, the first two only
for models that take them."""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any

from t2v import frontend as F
from t2v.desktop.tasks import POST_ONLY, Clip

CLIP_TYPES = (("Video clips", "*.mp4 *.webm *.gif"), ("All files", "*"))
V2V = F.CLIP_USES[0]  # the use that takes a strength
HINT_COLOUR = "#6b7280"


class ClipInput:
    """Three rows of ``form`` from ``row``: the clip's path with Browse… and Clear, the use and the strength, and a
    line saying what the use does."""

    ROWS = 3

    def __init__(self, form, row: int) -> None:
        labels = F.CLIP_LABELS
        ttk.Label(form, text=labels["source_clip"]).grid(row=row, column=0, sticky="w", pady=2)
        self.path = tk.StringVar()
        self.entry = ttk.Entry(form, textvariable=self.path, width=12)  # narrow: it stretches with its column
        self.entry.grid(row=row, column=1, sticky="ew", pady=2)
        buttons = ttk.Frame(form)
        buttons.grid(row=row, column=2, columnspan=2, sticky="w", padx=(4, 0))
        self.browse = ttk.Button(buttons, text="Browse…", command=self.pick)
        self.browse.pack(side="left")
        self.clear_button = ttk.Button(buttons, text="Clear", command=self.clear)
        self.clear_button.pack(side="left", padx=(4, 0))
        ttk.Label(form, text=labels["clip_use"]).grid(row=row + 1, column=0, sticky="w", pady=2)
        self.use = tk.StringVar(value=V2V)
        self.use_box = ttk.Combobox(form, textvariable=self.use, values=F.CLIP_USES, state="readonly", width=16)
        self.use_box.grid(row=row + 1, column=1, sticky="w", pady=2)
        ttk.Label(form, text=labels["strength"]).grid(row=row + 1, column=2, sticky="w", padx=(8, 4))
        self.strength = tk.StringVar()
        self.strength_entry = ttk.Entry(form, textvariable=self.strength, width=8)
        self.strength_entry.grid(row=row + 1, column=3, sticky="w", pady=2)
        self.hint = ttk.Label(form, text="", foreground=HINT_COLOUR, wraplength=380, justify="left")
        self.hint.grid(row=row + 2, column=1, columnspan=3, sticky="w")
        self.use.trace_add("write", lambda *_: self.follow_use())
        self.follow_use()

    def follow_use(self) -> None:
        use = self.use.get()
        self.hint.configure(text=F.CLIP_HINTS.get(use, ""))
        self.strength_entry.configure(state="normal" if use == V2V else "disabled")

    def set_inputs(self, inputs) -> None:
        """The uses the chosen model offers (by its input fields); a use it does not offer gives way to the first."""
        uses = F.clip_uses(tuple(inputs or ()))
        self.use_box.configure(values=uses)
        if self.use.get() not in uses:
            self.use.set(uses[0])

    def pick(self) -> None:
        name = filedialog.askopenfilename(parent=self.entry, title=F.CLIP_LABELS["source_clip"], filetypes=CLIP_TYPES)
        if name:
            self.path.set(name)

    def clear(self) -> None:
        self.path.set("")

    def chosen(self) -> Clip | None:
        """The clip, its use and strength (None: no clip); FormError naming the field when the path is no file."""
        text = self.path.get().strip()
        if not text:
            return None
        path = Path(text).expanduser()
        if not path.is_file():
            raise F.FormError(f"{F.CLIP_LABELS['source_clip']}: {text} is not a file; choose a clip with Browse…",
                              field="source_clip")
        return Clip(path, self.use.get(), self.strength.get().strip() or None)

    def restore(self, request: dict[str, Any], files: dict[str, Path]) -> str | None:
        """Put back the clip a past job was made from (a remix): its use, its strength, and its file when this
        window uploaded it (``files``: asset id -> path) and it is still there. Returns the use, or None for a
        job made without one."""
        if request.get("mode") == "post":
            asset, use = request.get("asset"), POST_ONLY
        else:
            field, use = F.clip_of(request)
            asset = request.get(field) if field else None
        self.clear()
        self.strength.set("")
        if use is None:
            return None
        self.use.set(use)
        if use == V2V and request.get("strength") is not None:
            self.strength.set(f"{float(request['strength']):g}")
        path = files.get(asset or "")
        if path is not None and path.is_file():
            self.path.set(str(path))
        return use
