"""The desktop app's window: the form, Generate and Cancel, progress with the live preview, the finished clip
looping in the window, its files, the History tab and the Compare window of two past jobs. Every server call goes
through :mod:`t2v.client` in a worker thread (:class:`~t2v.desktop.bridge.Bridge`); the window only changes on
the Tk thread."""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
import tkinter as tk
from pathlib import Path
from tkinter import messagebox, ttk
from typing import Any

from t2v import frontend as F
from t2v.desktop.bridge import Bridge
from t2v.desktop.compare import CompareWindow
from t2v.desktop.files import FileActions
from t2v.desktop.form import Form
from t2v.desktop.history import History
from t2v.desktop.layout import Scrolled, flow, progress_style, use_theme, wrap_to_width
from t2v.desktop.report import write_report
from t2v.desktop.local import LocalServer
from t2v.desktop.player import LiveClip, Player
from t2v.desktop.queue import QueueControls
from t2v.desktop.tasks import (
    POST_ONLY, clip_request, fetch_clip, fetch_image, fetch_live, has_sound, list_jobs, message_of, submit_job)

TITLE = "t2v: text to video"
NOTICE_S = 4.0  #: how long a one-off status message outlasts the job's events (see DesktopApp.notify)


def default_downloads() -> Path:
    return Path(os.environ.get("T2V_DESKTOP_DIR") or Path.home() / "Videos" / "t2v")


class DesktopApp:
    """The window over a t2v server at ``url`` (``key``: its API key, when it runs with keys)."""

    def __init__(self, root: tk.Tk, url: str | None, key: str | None = None, *, downloads: Path | None = None,
                 theme: bool = True, local=None) -> None:
        self.root, self.url, self.local = root, url, local
        self.downloads = Path(downloads or default_downloads())
        self.report_path = os.environ.get("T2V_DESKTOP_REPORT")
        self.client = None
        self.job_id: str | None = None
        self.eta = F.SteadyEta()  # the shown job's ETA, steadied
        self.view: F.JobView | None = None
        self.notice: tuple[str, float, str | None] = ("", 0.0, None)
        self.last_seed: int | None = None
        self.clip: Path | None = None
        self.preview_step = -1
        self.live = LiveClip()  # the running job's clip so far, playing from its first part
        self.ready = False  # the models have loaded
        self.watching = threading.Event()  # set: stop following the current job's events
        self.history_jobs: list = []
        self.uploads: dict[str, Path] = {}  # asset id -> the file of the user's own clip this window uploaded
        self.sent_clip = None  # the user's clip of the job being sent
        self.comparing: CompareWindow | None = None
        self.confirm = lambda title, text: messagebox.askyesno(title, text, parent=root)
        root.title(TITLE)
        root.minsize(900, 650)  # and any size above: the form scrolls, text wraps to its column
        root.geometry("1040x780")
        root.report_callback_exception = lambda _t, e, _tb: self.show_error(e)
        if theme:
            use_theme(root)
        self.bridge = Bridge(root)
        self.build()
        self.report_due = None
        if self.report_path:  # a resize and a change of tab are reported too
            root.bind("<Configure>", lambda e: e.widget is root and self.report_soon(), add="+")
            self.tabs.bind("<<NotebookTabChanged>>", lambda _e: self.report_soon(), add="+")
        if local is None:
            self.connect(key)
        else:  # a private server: the window shows while it starts (the model warms up first)
            self.status.configure(text="Starting a local t2v server (the model loads first)…")
            self.bridge.run(local.start, done=lambda url: self.started(url, key), failed=self.show_error)

    def started(self, url: str, key: str | None) -> None:
        self.url = url
        self.server_label.configure(text=f"Server {url} (local)")
        self.connect(key)

    # -- layout ----------------------------------------------------------------------------------------
    def build(self) -> None:
        root = self.root
        top = ttk.Frame(root, padding=(8, 8, 8, 0))
        top.pack(fill="x")
        self.server_label = ttk.Label(top, text=f"Server {self.url or '(starting)'}")
        self.server_label.pack(side="left")
        self.key_var = tk.StringVar()
        ttk.Button(top, text="Use key", command=lambda: self.connect(self.key_var.get())).pack(side="right")
        self.key_entry = ttk.Entry(top, textvariable=self.key_var, show="•", width=28)
        self.key_entry.pack(side="right", padx=4)
        ttk.Label(top, text="API key").pack(side="right")
        self.tabs = ttk.Notebook(root)
        self.tabs.pack(fill="both", expand=True, padx=8, pady=8)
        page = ttk.Frame(self.tabs)
        self.tabs.add(page, text="Generate")
        scroller = Scrolled(page)  # the form scrolls in its column at any window height
        scroller.pack(side="left", fill="y")
        self.form = Form(scroller.inner, on_model=self.choose_model, on_preset=self.apply_preset)
        self.form.pack(fill="both", expand=True)
        out = ttk.Frame(page, padding=8)
        out.pack(side="left", fill="both", expand=True)
        buttons = ttk.Frame(out)
        buttons.pack(fill="x")
        self.generate_button = ttk.Button(buttons, text="Generate", command=self.generate, style="Accent.TButton")
        self.queue = QueueControls(buttons, self)  # Pause/Resume; Set priority and Update while queued
        self.pause_button = self.queue.pause_button
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel, state="disabled")
        self.steering = [self.generate_button, self.pause_button, self.cancel_button, *self.queue.make_rest(buttons)]
        flow(buttons, list(self.steering))
        self.priority, self.priority_button, self.update_button = (self.queue.priority, self.queue.priority_button,
                                                                   self.queue.update_button)
        self.status = ttk.Label(out, text="Connecting…", wraplength=460)
        self.status.pack(fill="x", pady=(8, 2))
        self.progress = ttk.Progressbar(out, maximum=1000, mode="determinate", style=progress_style(root))
        self.progress.pack(fill="x")
        self.progress_text = ttk.Label(out, text="")
        self.progress_text.pack(fill="x")
        files = ttk.Frame(out)  # (packed before the player, so a short window shrinks the player, not these)
        files.pack(side="bottom", fill="x", pady=4)
        self.summary = ttk.Label(out, text="", wraplength=460, justify="left")
        self.summary.pack(side="bottom", fill="x")
        self.screen = ttk.Label(out, anchor="center")
        self.screen.pack(fill="both", expand=True, pady=6)
        self.player = Player(self.screen)
        self.files = FileActions(files, self)  # Open file, Open folder, Save as…
        self.steering += [b for b in self.files.buttons]  # (every button of the column, for the report)
        self.open_file, self.open_folder, self.save_as = self.files.open_file, self.files.open_folder, self.files.save_as
        self.history = History(self.tabs, on_search=self.search, on_show=self.show_job, on_remix=self.remix,
                               on_delete=self.delete, on_compare=self.compare, on_error=self.show_error)
        self.tabs.add(self.history, text="History")
        self.error = ttk.Label(root, text="", foreground="#b91c1c", padding=(8, 0, 8, 8), wraplength=880)
        self.error.pack(fill="x")
        wrap_to_width(out, self.status, self.summary)  # lines wrap at the column's width, whatever the window's
        wrap_to_width(root, self.error)
        self.root.bind("<Control-Return>", lambda _e: self.generate())
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        self.form.prompt.focus_set()

    # -- messages --------------------------------------------------------------------------------------
    def show_error(self, e: BaseException | str) -> None:
        self.error.configure(text="⚠ " + (e if isinstance(e, str) else message_of(e)))
        self.report()

    def clear_error(self) -> None:
        self.error.configure(text="")

    def report(self, **extra: Any) -> None:
        """With ``T2V_DESKTOP_REPORT=FILE``, what the window shows, as JSON (for automation and tests)."""
        if self.report_path:
            write_report(self, self.report_path, **extra)

    def report_soon(self) -> None:
        """One report once the window has settled (a resize sends many events)."""
        def due() -> None:
            self.report_due = None
            self.report()

        if self.report_due is None:
            self.report_due = self.root.after(150, due)

    # -- connection, models, presets ---------------------------------------------------------------------
    def connect(self, key: str | None) -> None:
        """(Re)connect with ``key``: load the models and the history."""
        from t2v.client import Client  # deferred: imports httpx

        if self.url is None:
            self.show_error("The local server has not started yet.")
            return
        key = (key or "").strip() or None
        self.key_var.set(key or "")
        if self.client is not None:
            self.bridge.run(self.client.close)
        self.client = Client(self.url, api_key=key, retries=2)
        self.clear_error()
        self.bridge.run(self.client.models, done=self.on_models, failed=self.show_error)

    def on_models(self, models) -> None:
        self.form.set_models(models)
        chosen = self.form.vars["model"].get()
        default = self.form.picker.find(models.default)  # the server's own model (by id or alias)
        model = chosen if chosen in self.form.models else (default.id if default is not None else
                                                            next(iter(self.form.models), models.default or ""))
        self.choose_model(model)
        self.status.configure(text="Ready: describe a clip and press Generate.")
        self.refresh_history()
        self.ready = True
        self.report()

    def choose_model(self, model: str) -> None:
        self.form.apply_model(model)
        self.apply_preset("Quality")

    def apply_preset(self, name: str) -> None:
        model = self.form.vars["model"].get()
        try:
            self.form.fill(F.preset(name, self.form.defaults_of(model), self.form.limits))
        except F.FormError as e:
            self.show_error(e)

    # -- generate, watch, cancel -------------------------------------------------------------------------
    def generate(self) -> None:
        self.clear_error()
        try:
            form, image, last = self.form.values(), self.form.image_path(), self.form.image_path("last_image")
            files, clip = self.form.control_files(), self.form.clip.chosen()
            if clip is None or clip.use != POST_ONLY:
                if form["seed_mode"] == "fixed":
                    F.resolve_seed("fixed", form["seed"])  # a bad seed is refused before anything is sent
                F.request_fields(form, None)
            if clip is not None:  # a use the model cannot take, a bad strength: named before the upload
                clip_request(form, None, clip, "-", self.form.inputs)
        except F.FormError as e:
            self.show_error(e)
            return
        self.generate_button.configure(state="disabled")
        self.status.configure(text="Uploading your video…" if clip is not None else "Sending…")
        self.sent_clip = clip
        self.bridge.run(submit_job, self.client, form, image, self.last_seed, last, files, clip, self.form.inputs,
                        done=self.on_submitted, failed=self.on_refused)

    def on_refused(self, e: BaseException) -> None:
        self.generate_button.configure(state="normal")
        self.status.configure(text="Not sent.")
        self.show_error(e)

    def on_submitted(self, job) -> None:
        self.job_id, self.preview_step, self.clip, self.eta = job.id, -1, None, F.SteadyEta()
        self.live = LiveClip()
        request = job.request or {}
        if self.sent_clip is not None:  # so a remix of the job finds the file again
            asset = request.get("asset") or request.get(F.clip_of(request)[0] or "")
            if asset:
                self.uploads[asset] = self.sent_clip.path
        self.last_seed = request.get("seed", self.last_seed)
        self.cancel_button.configure(state="normal")
        self.queue.enable(True)
        self.player.stop()  # the last clip stays as a still until the first preview replaces it
        self.files.enable(False)
        self.show_view(F.view_of(job))
        self.watching.set()  # the previous job's stream stops
        self.watching = self.bridge.stream(functools.partial(self.client.events, job.id), item=self.on_event,
                                           failed=self.on_stream_broken)

    def on_event(self, event) -> None:
        if event.job is None or event.job.id != self.job_id:
            if event.event == "error":
                self.show_error(str(event.data.get("detail") or event.data))
            return
        v = F.view_of(event.job)
        self.show_view(v)
        if v.status == "running" and v.step > self.preview_step:
            self.preview_step = v.step
            self.bridge.run(fetch_image, self.client, v.job_id, "preview", done=self.on_preview)
        if v.status == "running" and self.live.due():
            self.bridge.run(fetch_live, self.client, v.job_id, done=self.on_live, failed=lambda e: self.live.done(0))
        if v.finished:
            self.finished(event.job)

    def on_stream_broken(self, e: BaseException) -> None:
        self.show_error(e)
        self.generate_button.configure(state="normal")

    def on_preview(self, result) -> None:
        job_id, image = result
        if (image is not None and job_id == self.job_id and self.view is not None and not self.view.finished
                and not self.live.frames):  # once the clip so far plays, the previews give way to it
            self.player.show_still(image)

    def on_live(self, result) -> None:
        job_id, frames, fps = result
        if job_id != self.job_id or self.view is None or self.view.finished:
            return
        if frames and len(frames) > self.live.frames:
            self.player.start(frames, fps)
        self.live.done(len(frames or ()))

    def notify(self, text: str) -> None:
        """A one-off message (saved, updated, pausing) on the status line, which the job's next events leave in
        place for :data:`NOTICE_S` seconds unless its status changes."""
        self.notice = (text, time.monotonic() + NOTICE_S, self.view.status if self.view else None)
        self.status.configure(text=text)

    def show_view(self, v: F.JobView) -> None:
        if v.status == "running":  # the ETA steadied as the web page's is (one per job: reset on submit)
            v = dataclasses.replace(v, eta_s=self.eta(v.eta_s))
        self.view = v
        if not v.finished:
            self.queue.show(v)
        text, until, status = self.notice  # a one-off message stays a few seconds while the status holds
        self.status.configure(text=text if v.status == status and time.monotonic() < until else v.message)
        self.progress.configure(value=round(v.fraction * 1000))
        self.progress_text.configure(text=F.progress_label(v) if not v.finished or v.status == "succeeded" else "")
        self.summary.configure(text="\n".join(f"{label}: {text}" for label, text in v.summary_parts()))
        self.report()

    def finished(self, job) -> None:
        self.generate_button.configure(state="normal")
        self.cancel_button.configure(state="disabled")
        self.queue.enable(False)
        if job.status == "succeeded":
            self.bridge.run(fetch_clip, self.client, self.downloads, job, done=self.on_clip, failed=self.show_error)
        elif job.status == "failed":
            self.show_error(f"Job failed: {job.error or 'unknown error'}")
        if job.status != "succeeded":
            self.player.clear()  # the last preview's noise is not a result
        self.refresh_history()

    def on_clip(self, result) -> None:
        job_id, path, frames, fps = result
        if job_id != self.job_id:
            return
        self.clip = path
        self.player.start(frames, fps)
        self.files.enable(True, sound=has_sound(path))
        self.report(frame_size=list(frames[0].size), frame_count=len(frames))

    def cancel(self) -> None:
        if not self.job_id:
            return
        self.cancel_button.configure(state="disabled")
        self.notify("Cancelling: the job stops after the current step…")
        self.bridge.run(self.client.cancel, self.job_id, failed=self.show_error)

    # -- history -----------------------------------------------------------------------------------------
    def refresh_history(self) -> None:
        self.search(self.history.query.get())

    def search(self, query: str) -> None:
        query = query.strip() or None
        self.bridge.run(list_jobs, self.client, query, done=lambda jobs: self.on_history(jobs, query),
                        failed=self.show_error)

    def on_history(self, jobs: list, query: str | None) -> None:
        self.history_jobs = self.history.load(jobs, query)
        self.report()

    def show_job(self, job) -> None:
        self.job_id, self.clip = job.id, None
        self.show_view(F.view_of(job))
        self.tabs.select(0)
        if job.status == "succeeded":
            self.bridge.run(fetch_clip, self.client, self.downloads, job, done=self.on_clip, failed=self.show_error)
        else:
            self.player.stop()
            if job.error:
                self.show_error(f"Job failed: {job.error}")

    def remix(self, job) -> None:
        request = job.request or {}
        try:
            if request.get("mode") == "post":  # a post job of a clip: its steps and formats, the rest as it is
                values = {**F.post_form(request.get("post")), "formats": request.get("formats") or ()}
            else:
                values = F.remix_form(request)
        except F.FormError as e:
            self.show_error(e)
            return
        model = self.form.picker.find(values.get("model"))
        if model is not None or values.get("model"):
            self.form.apply_model(model.id if model is not None else values["model"])
        self.form.fill(values)
        use = self.form.clip.restore(request, self.uploads)
        self.tabs.select(0)
        text = f"Remixing {job.id}: the seed is fixed, so Generate makes the same clip again."
        if use == POST_ONLY:
            text = f"Remixing {job.id}: its post-processing steps are back; Generate runs them on your video again."
        if use is not None and not self.form.clip.path.get():
            text = (f"Remixing {job.id} ({use}): choose your video again with Browse… (the server keeps the clip, "
                    "but the app cannot fetch it back).")
        self.status.configure(text=text)
        self.report()

    def compare(self, a, b) -> None:
        """Open the Compare window for two past jobs (one at a time: a new pair replaces the last)."""
        if self.comparing is not None:
            self.comparing.close()
        self.comparing = CompareWindow(self, a, b)

    def delete(self, job) -> None:
        prompt = (job.request or {}).get("prompt") or job.id
        if not self.confirm("Delete", f"Delete “{prompt}” ({job.id}) and its files on the server?"):
            return
        self.bridge.run(self.client.delete, job.id, done=lambda _j: self.refresh_history(), failed=self.show_error)

    # -- closing -----------------------------------------------------------------------------------------
    def close(self) -> None:
        self.job_id = None
        self.watching.set()  # the event stream stops at its next event
        self.player.stop()
        if self.comparing is not None:
            self.comparing.close()
        self.bridge.close()
        if self.client is not None:
            self.client.close()
        if self.local is not None:
            self.local.stop()
        self.root.destroy()


def run(url: str | None = None, key: str | None = None, *, model: str | None = None,
        downloads: Path | None = None) -> None:
    """Open the window. Without ``url`` a private ``t2v serve`` is started on a free loopback port first
    (and stopped when the window closes)."""
    local = LocalServer(model) if url is None else None
    try:
        root = tk.Tk(className="t2v")
        DesktopApp(root, url, key, downloads=downloads, local=local)
        root.mainloop()
    finally:
        if local is not None:
            local.stop()
