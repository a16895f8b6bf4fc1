"""The desktop app's History tab: finished jobs of the key, searchable, with Show, Remix and Delete, and Compare
for two of them (Ctrl-click selects the second)."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable

from t2v import frontend as F

COLUMNS = (("status", "Status", 90), ("prompt", "Prompt", 320), ("seed", "Seed", 100), ("created", "Created", 170))
LIMIT = 200


class History(ttk.Frame):
    """A search box, a table of jobs and the actions on the selected one, or on the two selected (the app supplies
    the actions)."""

    def __init__(self, master, *, on_search: Callable[[str], None], on_show: Callable[[Any], None],
                 on_remix: Callable[[Any], None], on_delete: Callable[[Any], None],
                 on_compare: Callable[[Any, Any], None], on_error: Callable[[Exception], None]) -> None:
        super().__init__(master, padding=8)
        self.on_error = on_error
        self.jobs: dict[str, Any] = {}
        bar = ttk.Frame(self)
        bar.pack(fill="x")
        self.query = tk.StringVar()
        self.search = ttk.Entry(bar, textvariable=self.query)
        self.search.pack(side="left", fill="x", expand=True)
        self.search.bind("<Return>", lambda _e: on_search(self.query.get()))
        ttk.Button(bar, text="Search", command=lambda: on_search(self.query.get())).pack(side="left", padx=4)
        # the table and its scroll bar in a frame of their own: every job reachable, whatever the window's height
        # (the table is the frame's child, not packed into it from outside: a sibling made later would cover it)
        rows = ttk.Frame(self)
        rows.pack(fill="both", expand=True, pady=6)
        self.table = ttk.Treeview(rows, columns=[c for c, *_ in COLUMNS], show="headings", selectmode="extended",
                                  height=14)
        for name, title, width in COLUMNS:
            self.table.heading(name, text=title)
            self.table.column(name, width=width, minwidth=width if name != "prompt" else 120, stretch=name == "prompt")
        bar = ttk.Scrollbar(rows, orient="vertical", command=self.table.yview)
        self.table.configure(yscrollcommand=bar.set)
        self.table.pack(side="left", fill="both", expand=True)
        bar.pack(side="right", fill="y")
        self.table.bind("<Double-1>", lambda _e: self.act(on_show))
        actions = ttk.Frame(self)
        actions.pack(fill="x")
        for text, action in (("Show", on_show), ("Remix", on_remix), ("Delete", on_delete)):
            ttk.Button(actions, text=text, command=lambda a=action: self.act(a)).pack(side="left", padx=(0, 6))
        self.compare_button = ttk.Button(actions, text="Compare", command=lambda: self.act_on_pair(on_compare))
        self.compare_button.pack(side="left", padx=(0, 6))
        self.note = ttk.Label(actions, text="")
        self.note.pack(side="left", padx=8)

    def load(self, jobs: list, query: str | None = None) -> list:
        """Show the finished ``jobs`` matching ``query``, newest first; returns them."""
        shown = F.filter_jobs(jobs, query, limit=LIMIT)
        self.jobs = {job.id: job for job in shown}
        self.table.delete(*self.table.get_children())
        for job in shown:
            r = job.request or {}
            prompt = F.caption(job.status, r, job.error).rsplit(" · seed ", 1)[0]
            created = (job.created_at or "")[:19].replace("T", " ")
            self.table.insert("", "end", iid=job.id, values=(job.status, prompt, r.get("seed", ""), created))
        self.note.configure(text=f"{len(shown)} job{'s' if len(shown) != 1 else ''}")
        return shown

    def selected(self):
        """The selected job (of several, the one clicked last; FormError when none is)."""
        chosen = self.table.selection()
        if not chosen:
            raise F.FormError("History: select a job first")
        focus = self.table.focus()
        return self.jobs[focus if focus in chosen else chosen[0]]

    def pair(self) -> tuple[Any, Any]:
        """The two selected jobs, in the table's order (newest first); FormError unless two finished clips are."""
        chosen = self.table.selection()
        if len(chosen) != 2:
            raise F.FormError(f"Compare: select two jobs (Ctrl-click the second); {len(chosen)} selected")
        jobs = tuple(self.jobs[i] for i in sorted(chosen, key=self.table.index))
        for job in jobs:
            if job.status != "succeeded":
                prompt = (job.request or {}).get("prompt") or job.id
                raise F.FormError(f"Compare: “{prompt}” made no clip ({job.status}); choose two that succeeded")
        return jobs

    def act_on_pair(self, action: Callable[[Any, Any], None]) -> None:
        try:
            a, b = self.pair()
        except F.FormError as e:
            self.on_error(e)
            return
        action(a, b)

    def act(self, action: Callable[[Any], None]) -> None:
        try:
            job = self.selected()
        except F.FormError as e:
            self.on_error(e)
            return
        action(job)
