"""Two past jobs side by side (History, Compare): a window with both clips playing in step and the parameters that
differ between the two requests listed under them (:func:`t2v.frontend.differences`).

One timer drives both players, so the frames shown at any moment are those of the same instant of each clip: it
ticks at the faster clip's fps, and each clip shows its frame for the time since the start. The shorter clip holds
its last frame until the longer one ends; then both start again together. The clips are downloaded and decoded
through the app's bridge, never on the Tk thread."""

from __future__ import annotations

import math
import tkinter as tk
from tkinter import ttk

from t2v import frontend as F
from t2v.desktop.layout import screen_box, wrap_to_width
from t2v.desktop.player import Player
from t2v.desktop.tasks import fetch_clip, message_of

SIDE = 320  # each player's longer side in pixels: two fit side by side in the smallest window
NAMES = ("A", "B")


class CompareWindow:
    """A Toplevel over ``app``'s window (a :class:`t2v.desktop.app.DesktopApp`) comparing jobs ``a`` and ``b``."""

    def __init__(self, app, a, b) -> None:
        self.app, self.jobs = app, (a, b)
        self.top = tk.Toplevel(app.root)
        self.top.title("Compare: " + " | ".join(f"{n} {job.id}" for n, job in zip(NAMES, self.jobs)))
        self.top.minsize(720, 480)
        body = ttk.Frame(self.top, padding=8)
        body.pack(fill="both", expand=True)
        self.players: list[Player] = []
        self.screens: list[ttk.Label] = []
        for column, (name, job) in enumerate(zip(NAMES, self.jobs)):
            body.columnconfigure(column, weight=1, uniform="clips")
            caption = F.caption(job.status, job.request or {}, job.error)
            ttk.Label(body, text=f"{name}: {caption}", wraplength=SIDE, justify="left").grid(
                row=0, column=column, sticky="nw", padx=4)
            screen = ttk.Label(body, anchor="center")
            screen.grid(row=1, column=column, sticky="nsew", padx=4, pady=6)
            self.screens.append(screen)
            self.players.append(Player(screen))
        body.rowconfigure(1, weight=1, minsize=SIDE + 12)  # the clip and its label's padding (pady 6)
        self.status = ttk.Label(body, text="Fetching the two clips…")
        self.status.grid(row=2, column=0, columnspan=2, sticky="ew", padx=4)
        rows = F.differences((a.request or {}), (b.request or {}))
        self.differences = F.differences_text(rows, NAMES)
        head = f"{len(rows)} parameter{'s' if len(rows) != 1 else ''} differ:" if rows else ""
        self.text = ttk.Label(body, text="\n".join(filter(None, (head, self.differences))), justify="left")
        self.text.grid(row=3, column=0, columnspan=2, sticky="ew", padx=4, pady=(6, 0))
        ttk.Button(body, text="Close", command=self.close).grid(row=4, column=1, sticky="e", pady=(8, 0))
        wrap_to_width(body, self.status, self.text, margin=24)
        self.top.protocol("WM_DELETE_WINDOW", self.close)
        self.top.bind("<Escape>", lambda _e: self.close())
        self.loaded = [False, False]
        self.after_id = None
        self.closed = False
        self.rate, self.tick_ms, self.ticks, self.loop = 8.0, 125, 0, 1  # set when both clips are in
        self.clock = 0  # ticks since the loop began
        for i, job in enumerate(self.jobs):
            app.bridge.run(fetch_clip, app.client, app.downloads, job, SIDE,
                           done=lambda result, i=i: self.on_clip(i, result), failed=self.on_failed)

    @property
    def playing(self) -> bool:
        return self.after_id is not None

    def on_clip(self, i: int, result) -> None:
        if self.closed:
            return
        _job_id, _path, frames, fps = result
        self.players[i].load(frames, fps)
        self.players[i].show(0)
        self.loaded[i] = True
        if all(self.loaded):
            self.start()

    def on_failed(self, e: BaseException) -> None:
        if not self.closed:
            self.status.configure(text="⚠ " + message_of(e))

    def start(self) -> None:
        """Both clips in: one timer at the faster clip's fps, a loop as long as the longer clip."""
        self.rate = rate = max(p.fps for p in self.players)
        self.tick_ms = max(15, round(1000 / rate))
        seconds = max(len(p.photos) / p.fps for p in self.players)
        self.loop = max(1, math.ceil(seconds * rate - 1e-6))
        counts = " and ".join(f"{n} {len(p.photos)} frames at {p.fps:g} fps" for n, p in zip(NAMES, self.players))
        self.status.configure(text=f"Playing in step: {counts}" + (
            "; the shorter holds its last frame." if len({len(p.photos) / p.fps for p in self.players}) > 1 else "."))
        self.clock = 0
        self.tick()
        self.app.report()

    def frame_at(self, player: Player, clock: int) -> int:
        """The frame of ``player``'s clip at ``clock`` ticks from the start (its last one once it has ended)."""
        return min(int(clock / self.rate * player.fps + 1e-6), len(player.photos) - 1)

    def tick(self) -> None:
        for player in self.players:
            player.show(self.frame_at(player, self.clock))
        self.ticks += 1
        self.clock = (self.clock + 1) % self.loop
        self.after_id = self.top.after(self.tick_ms, self.tick)

    def state(self) -> dict:
        """What the window shows (for the app's report)."""
        return {"frames": [p.current for p in self.players], "shown": [p.shown for p in self.players],
                "ticks": self.ticks, "playing": self.playing, "differences": self.differences,
                "status": self.status.cget("text"),
                "pictures": [p.picture_size() for p in self.players],
                "boxes": {"window": screen_box(self.top), "screens": [screen_box(s) for s in self.screens]}}

    def close(self) -> None:
        self.closed = True
        if self.after_id is not None:
            try:
                self.top.after_cancel(self.after_id)
            except tk.TclError:
                pass
            self.after_id = None
        try:
            self.top.destroy()
        except tk.TclError:  # already gone with the main window
            pass
