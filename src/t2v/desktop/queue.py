"""The desktop app's queue controls for its current job: Pause/Resume, and while it waits in the queue, Set
priority and Update (the form as it is now, checked as at submit). Network calls go through the app's bridge."""

from __future__ import annotations

import functools
import tkinter as tk
from tkinter import ttk

from t2v import frontend as F
from t2v.desktop.tasks import update_job


class QueueControls:
    """The buttons beside Generate and Cancel; ``app`` is the :class:`t2v.desktop.app.DesktopApp` they act for."""

    def __init__(self, parent, app) -> None:
        self.app = app
        self.pause_button = ttk.Button(parent, text="Pause", command=self.pause_or_resume, state="disabled")
        self.priority = tk.IntVar(value=0)

    def make_rest(self, parent) -> list:
        """The priority box and the Set priority and Update buttons (after Cancel), for the caller to lay out."""
        label = ttk.Label(parent, text="Priority")
        box = ttk.Spinbox(parent, from_=-100, to=100, width=5, textvariable=self.priority)
        self.priority_button = ttk.Button(parent, text="Set priority", command=self.set_priority, state="disabled")
        self.update_button = ttk.Button(parent, text="Update", command=self.update_queued, state="disabled")
        return [label, box, self.priority_button, self.update_button]

    def enable(self, on: bool) -> None:
        state = "normal" if on else "disabled"
        self.pause_button.configure(state=state, text="Pause")
        self.priority_button.configure(state=state)
        self.update_button.configure(state=state)

    def show(self, view: F.JobView) -> None:
        self.pause_button.configure(text="Resume" if view.status == "paused" else "Pause")

    def pause_or_resume(self) -> None:
        """Pause the job (a running one stops after its step, its progress kept), or resume a paused one."""
        app = self.app
        if not app.job_id:
            return
        resume = app.view is not None and app.view.status == "paused"
        app.notify("Resuming…" if resume else "Pausing: the job stops after the current step…")
        action = app.client.resume_job if resume else app.client.pause_job
        app.bridge.run(action, app.job_id, done=lambda job: app.show_view(F.view_of(job)), failed=app.show_error)

    def set_priority(self) -> None:
        """The queued job's priority (-100 to 100; a higher one starts first)."""
        app = self.app
        if not app.job_id:
            return
        try:
            value = int(self.priority.get())
        except (tk.TclError, ValueError):
            app.show_error("Priority: give a whole number from -100 to 100")
            return
        app.bridge.run(functools.partial(app.client.change_job, app.job_id, priority=value),
                       done=lambda job: app.show_view(F.view_of(job)), failed=app.show_error)

    def update_queued(self) -> None:
        """Give the job, while it waits in the queue, the form as it is now (checked as at submit)."""
        app = self.app
        if not app.job_id:
            return
        try:
            form = app.form.values()
            F.request_fields(form, None)
        except F.FormError as e:
            app.show_error(e)
            return

        def done(job) -> None:
            app.show_view(F.view_of(job))
            app.notify("Updated: the queued job runs with this form.")

        app.bridge.run(update_job, app.client, app.job_id, form, done=done, failed=app.show_error)
