"""The page's view of the queue: the key's jobs that are waiting, paused or running, each with its place in the
queue, priority, progress and prompt, refreshed every few seconds. A row opens its job in the result panel,
where Cancel, Pause, Resume and Set priority act on it (so several jobs stay in view, not only the last)."""

from t2v import frontend as F
import t2v.ui.events as E
import t2v.ui.handlers as H

HEADERS = ["#", "Status", "Priority", "Progress", "Prompt", "Job"]
REFRESH_S = 2.0
LIMIT = 50  # rows shown; the REST API lists the rest
EMPTY = "No jobs of yours are waiting or running."


def queue_rows(service, token: str | None) -> list[list]:
    """One row a job of the caller's key that is running, queued or paused: running first, then the queue in the
    order it will run (position), then paused ones."""
    key_row = H.authorize(service, token)
    rows = []
    for status in ("running", "queued"):
        for job in service.list(status=status, limit=LIMIT, api_key=key_row, order="asc"):
            v = H.view(service, job.id, token)
            place = v.queue_position if v.status == "queued" else None
            rows.append([place or "", v.status, job.priority, F.progress_label(v) if v.status == "running" else "",
                         (job.request or {}).get("prompt") or "", job.id])  # (the table shows the id's tail)
    order = {"running": 0, "queued": 1, "paused": 2}
    rows.sort(key=lambda r: (order.get(r[1], 3), r[0] if r[0] != "" else 0))
    return rows[:LIMIT]


class QueuePanel:
    """The "Your queue" table (built inside the caller's layout) and its refresh timer."""

    def __init__(self, gr) -> None:
        self.gr = gr
        with gr.Accordion("Your queue", open=True, elem_id="t2v-queue"):
            self.note = gr.Markdown(EMPTY, elem_id="t2v-queue-note")
            self.table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, wrap=True, max_height=240, visible=False,
                                      column_widths=["6%", "11%", "9%", "22%", "40%", "12%"], elem_id="t2v-queue-table")
        self.ids = gr.State([])  # the full job id of each row shown
        self.timer = gr.Timer(REFRESH_S)

    def updates(self, service, token) -> dict:
        try:
            rows = queue_rows(service, token)
        except Exception as e:  # no key yet, a revoked one: said once, in the note
            return {self.note: E.error_md(e), self.table: self.gr.update(value=[], visible=False), self.ids: []}
        note = EMPTY if not rows else f"{len(rows)} of your jobs waiting or running: pick one to show and steer it."
        shown = [[*r[:-1], "…" + r[-1][-8:].lower()] for r in rows]
        return {self.note: note, self.table: self.gr.update(value=shown, visible=bool(rows)),  # (no empty grid)
                self.ids: [r[-1] for r in rows]}

    def wire(self, service, key, *, show, status, outputs) -> None:
        """Refresh on the timer; a row picked shows its job through ``show(job_id, token)``, which returns updates
        of ``outputs`` (the result panel; errors go to ``status``)."""
        gr = self.gr  # (annotations evaluated as the function is made: Gradio passes the row by this one)
        common = dict(api_visibility="private", show_progress="hidden")
        self.timer.tick(lambda token: self.updates(service, token), [key], [self.note, self.table, self.ids], **common)

        def on_pick(ids, token, evt: gr.SelectData):
            index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            if index is None or not 0 <= index < len(ids):
                raise H.UIError("That queue row is gone: it refreshes every few seconds.")
            return show(ids[index], token)

        self.table.select(E.guarded(status, on_pick), [self.ids, key], outputs, **common)
