"""The desktop form's model picker: a read-only combobox of each model's label from :mod:`t2v.frontend.catalog`
(what it makes, ready or its download size, its GPU memory and licence; the server's model first, then by task),
with the model id kept behind each label, and under it one sentence on a model that is not on the server."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from tkinter import ttk
from typing import Any, Callable

from t2v import frontend as F
from t2v.frontend.catalog import find

STYLE = "t2v.Models.TCombobox"  # its -postoffset widens the list to its longest label
NOTE_COLOUR = "#b45309"


class ModelPicker:
    """The Model row of ``form`` at ``row`` (the combobox) and the note row under it. ``var`` holds the chosen
    model's id (what the request sends), the combobox shows its label; ``on_model(id)`` follows a choice."""

    def __init__(self, form, row: int, on_model: Callable[[str], None]) -> None:
        self.var = tk.StringVar()  # the model id
        self.shown = tk.StringVar()  # its label
        self.labels: dict[str, str] = {}  # id -> label
        self.ids: dict[str, str] = {}  # label -> id
        self.model_list = None
        self.box = ttk.Combobox(form, textvariable=self.shown, state="readonly", width=40, height=20, style=STYLE,
                                postcommand=self.widen)
        self.box.grid(row=row, column=1, columnspan=3, sticky="ew", pady=2)
        self.box.bind("<<ComboboxSelected>>", lambda _e: on_model(self.ids.get(self.shown.get(), self.shown.get())))
        self.note = ttk.Label(form, text="", foreground=NOTE_COLOUR, wraplength=380, justify="left")
        self.note.grid(row=row + 1, column=1, columnspan=3, sticky="w")
        self.note.grid_remove()

    @property
    def downloads(self) -> bool:
        return bool(getattr(self.model_list, "downloads", False))

    def load(self, model_list) -> dict[str, Any]:
        """Show the models of ``model_list`` (a :class:`t2v.contract.ModelList`); returns them by id, in the
        menu's order."""
        self.model_list = model_list
        menu = F.model_menu(model_list)
        self.labels = {model_id: label for label, model_id in menu}
        self.ids = {label: model_id for label, model_id in menu}
        self.box.configure(values=[label for label, _ in menu])
        by_id = {m.id: m for m in model_list.items}
        return {model_id: by_id[model_id] for _, model_id in menu}

    def find(self, name: str | None):
        """The model named ``name`` (its id or an alias), or None."""
        return find(self.model_list, name) if self.model_list is not None and name else None

    def select(self, model_id: str) -> str:
        """Show ``model_id`` chosen, and the note when it is not on the server; returns the note ("" if none)."""
        self.var.set(model_id)
        self.shown.set(self.labels.get(model_id, model_id))
        note = F.model_note(self.find(model_id), self.downloads)
        self.note.configure(text=note)
        if note:
            self.note.grid()
        else:
            self.note.grid_remove()
        return note

    def widen(self) -> None:
        """Before the list drops down: as wide as its longest label (within the screen), so each is read whole."""
        box = self.box
        font = tkfont.nametofont("TkDefaultFont")
        longest = max((font.measure(label) for label in self.labels.values()), default=0)
        room = box.winfo_screenwidth() - box.winfo_rootx() - box.winfo_width()
        extra = max(0, min(longest + 32 - box.winfo_width(), room))  # 32: the scroll bar and the list's padding
        ttk.Style(box).configure(STYLE, postoffset=(0, 0, extra, 0))
