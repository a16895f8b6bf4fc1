"""Layout helpers of the desktop window: its theme, a column that scrolls, labels that wrap to their column's width,
rows of buttons that wrap too, and a progress bar thick enough to see."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

PROGRESS_STYLE = "t2v.Horizontal.TProgressbar"


def use_theme(root: tk.Misc) -> None:
    """Sun Valley (sv-ttk, the ``desktop`` extra) when installed, else ttk's "clam"."""
    try:
        import sv_ttk

        sv_ttk.set_theme("light", root)
    except Exception:  # not installed, or an old Tk: the stock theme works
        ttk.Style(root).theme_use("clam")


class Scrolled(ttk.Frame):
    """A vertically scrolling column: put widgets in ``inner``; the column is as wide as they are and scrolls
    (scroll bar, mouse wheel) when the window is shorter than they are tall."""

    def __init__(self, master) -> None:
        super().__init__(master)
        self.canvas = tk.Canvas(self, highlightthickness=0, borderwidth=0)
        bar = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=bar.set)
        bar.pack(side="right", fill="y")
        self.canvas.pack(side="left", fill="both", expand=True)
        self.inner = ttk.Frame(self.canvas)
        self.canvas.create_window((0, 0), window=self.inner, anchor="nw")
        self.inner.bind("<Configure>", self.fit)
        for sequence in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.inner.bind_all(sequence, self.wheel, add="+")

    def fit(self, _event=None) -> None:
        self.canvas.configure(scrollregion=self.canvas.bbox("all"), width=self.inner.winfo_reqwidth())

    def wheel(self, event) -> None:
        widget = event.widget
        while widget is not None and widget is not self.inner:  # only over this column
            widget = getattr(widget, "master", None)
        if widget is None:
            return
        step = -1 if getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0 else 1
        self.canvas.yview_scroll(step, "units")


def wrap_to_width(container, *labels, margin: int = 16) -> None:
    """Keep each of ``labels`` wrapping at ``container``'s width (less ``margin``) as the window is resized."""
    def wrap(event) -> None:
        if event.widget is not container:  # (a toplevel's binding sees its children's events too)
            return
        width = max(200, event.width - margin)
        for label in labels:
            if int(label.cget("wraplength") or 0) != width:
                label.configure(wraplength=width)

    container.bind("<Configure>", wrap, add="+")


def progress_style(root) -> str:
    """The progress bar's style: 14 px thick, blue on grey. Its trough and bar are ttk's plain elements, which
    honour ``thickness`` (Sun Valley draws its own as a fixed hairline image)."""
    style = ttk.Style(root)
    if "t2v.pbar" not in style.element_names():
        style.element_create("t2v.trough", "from", "default")
        style.element_create("t2v.pbar", "from", "default")
    style.layout(PROGRESS_STYLE, [("t2v.trough", {"sticky": "nswe",
                                                  "children": [("t2v.pbar", {"side": "left", "sticky": "ns"})]})])
    style.configure(PROGRESS_STYLE, thickness=14, background="#2563eb", troughcolor="#e5e7eb", borderwidth=0)
    return PROGRESS_STYLE


def flow(frame, widgets, gap: int = 6) -> None:
    """Lay ``widgets`` (children of ``frame``) out left to right, starting a new line wherever the next would pass
    ``frame``'s width, again each time that width changes: a row of buttons that never runs off the window."""
    lines: list = []
    state = {"layout": None}

    def place(_event=None) -> None:
        width = frame.winfo_width()
        if width <= 1:
            width = frame.winfo_reqwidth()
        rows, x = [[]], 0
        for w in widgets:
            need = w.winfo_reqwidth() + gap
            if rows[-1] and x + need > width:
                rows.append([])
                x = 0
            rows[-1].append(w)
            x += need
        layout = [len(r) for r in rows]
        if layout == state["layout"]:
            return
        state["layout"] = layout
        while len(lines) < len(rows):
            lines.append(ttk.Frame(frame))
        for w in widgets:
            w.pack_forget()
        for i, line in enumerate(lines):
            if i < len(rows):
                line.pack(fill="x", anchor="w")
                for w in rows[i]:
                    w.pack(in_=line, side="left", padx=(0, gap), pady=1)
                    w.lift(line)  # (drawn above the line frame made after it)
            else:
                line.pack_forget()

    frame.bind("<Configure>", lambda e: place() if e.widget is frame else None, add="+")
    place()


def screen_box(widget) -> list[int]:
    """``widget``'s box on the screen: x, y, width, height (the window's report)."""
    return [widget.winfo_rootx(), widget.winfo_rooty(), widget.winfo_width(), widget.winfo_height()]


def tab_boxes(notebook) -> dict[str, list[int]]:
    """Each tab's box on the screen, by its text, found by asking the notebook which tab each point of its tab
    row is over (Tk has no command that answers a tab's box directly)."""
    pages = notebook.tabs()
    if not pages or not notebook.winfo_ismapped():
        return {}
    page = notebook.nametowidget(notebook.select() or pages[0])
    height = max(1, page.winfo_y())  # the tab row ends where the pages begin
    spans: dict[int, list[int]] = {}
    for x in range(0, notebook.winfo_width(), 2):
        try:
            index = notebook.index(f"@{x},{height // 2}")
        except (tk.TclError, ValueError):  # not over a tab
            continue
        if isinstance(index, int) and 0 <= index < len(pages):
            span = spans.setdefault(index, [x, x])
            span[1] = x
    x0, y0 = notebook.winfo_rootx(), notebook.winfo_rooty()
    return {notebook.tab(i, "text"): [x0 + a, y0, b - a + 2, height] for i, (a, b) in sorted(spans.items())}
