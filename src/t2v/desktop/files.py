"""The buttons under the player for the clip it shows: Open file and Open folder (the desktop's default program),
Save as… (a copy, the same extension, written whole or not at all) and Play sound (a clip that has sound: the
frames start again from the first with it, through the system's sound player)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from tkinter import filedialog, ttk

from t2v import frontend as F
from t2v.desktop.layout import flow
from t2v.desktop.tasks import open_path, play_sound, save_copy


class FileActions:
    """Open file, Open folder and Save as… in ``parent`` for ``app``'s clip (a :class:`t2v.desktop.app.DesktopApp`:
    its ``clip``, ``status`` and ``show_error``)."""

    def __init__(self, parent, app) -> None:
        self.app = app
        self.buttons = [ttk.Button(parent, text=t, command=c, state="disabled") for t, c in
                        (("Open file", self.open_file), ("Open folder", self.open_folder), ("Save as…", self.save_as),
                         ("Play sound", self.play_sound))]
        self.sound_button = self.buttons[-1]
        self.playing = None  # the sound player's process
        self.scratch = tempfile.TemporaryDirectory(prefix="t2v-sound-")
        flow(parent, self.buttons)  # on two lines in a narrow column

    def enable(self, on: bool, sound: bool = False) -> None:
        """The buttons for a clip (``on``); Play sound only when that clip has sound."""
        for b in self.buttons:
            b.configure(state="normal" if on and (b is not self.sound_button or sound) else "disabled")

    def play_sound(self) -> None:
        """The clip's sound from its start, with the frames started again from the first."""
        def play() -> None:
            if self.playing is not None and self.playing.poll() is None:
                self.playing.terminate()
            self.playing = play_sound(self.current_clip(), Path(self.scratch.name))
            self.app.player.show(0)
        self.guard(play)

    def current_clip(self) -> Path:
        clip = self.app.clip
        if clip is None or not clip.is_file():
            raise F.FormError("No clip yet: generate one or show one from the history")
        return clip

    def open_file(self) -> None:
        self.guard(lambda: open_path(self.current_clip()))

    def open_folder(self) -> None:
        self.guard(lambda: open_path(self.current_clip().parent))

    def save_as(self, target: str | Path | None = None) -> Path | None:
        """Copy the clip to ``target`` (asked for when None); returns where it went."""
        try:
            clip = self.current_clip()
            name = target or filedialog.asksaveasfilename(parent=self.app.root, initialdir=str(clip.parent),
                                                          initialfile=clip.name, defaultextension=clip.suffix)
            if not name:
                return None
            target = save_copy(clip, Path(name))
        except (F.FormError, OSError) as e:
            self.app.show_error(e if isinstance(e, F.FormError) else F.FormError(f"Save as: {e}"))
            return None
        self.app.notify(f"Saved {target}")
        return target

    def guard(self, fn) -> None:
        try:
            fn()
        except Exception as e:
            self.app.show_error(e)
