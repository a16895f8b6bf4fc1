"""The page's *Compare* tab: two past clips of the caller's key side by side, playing in sync, with the
parameters that differ between them listed (:func:`t2v.frontend.differences`). The clips come from the history
(succeeded jobs; the job shown in the Video tab is offered first)."""

from __future__ import annotations

from t2v import frontend as F
import t2v.ui.events as E
import t2v.ui.handlers as H
import t2v.ui.history as HI

HEADERS = ["Parameter", "A", "B"]

# A leads: B follows its play/pause and is pulled to A's time (modulo B's length) whenever they drift apart by
# more than a frame or so, which also keeps two loops of different lengths in step.
SYNC_JS = """() => {
    if (window.t2vCompareSync) clearInterval(window.t2vCompareSync);
    let started = false;
    window.t2vCompareSync = setInterval(() => {
        const a = document.querySelector("#t2v-compare-a video"), b = document.querySelector("#t2v-compare-b video");
        if (!a || !b || !(a.readyState >= 2) || !(b.readyState >= 2)) return;
        if (!started) { started = true; a.loop = b.loop = true; a.currentTime = 0; b.currentTime = 0; a.play(); b.play(); }
        if (a.paused !== b.paused) { if (a.paused) b.pause(); else b.play(); }
        const want = b.duration ? a.currentTime % b.duration : a.currentTime;
        if (Math.abs(b.currentTime - want) > 0.08) b.currentTime = want;
    }, 50);
}"""


def choices(service, token: str | None) -> list[tuple[str, str]]:
    """(caption, job id) of the key's succeeded clips, newest first."""
    return [(f"{i.caption} · {i.job_id[-6:].lower()}", i.job_id) for i in HI.items(service, None, token)
            if i.status == "succeeded"]


def compare(service, a: str | None, b: str | None, token: str | None) -> tuple[H.JobView, H.JobView, list[list[str]]]:
    """The views of the two jobs and their differing parameters (rows of :data:`HEADERS`)."""
    if not a or not b:
        raise H.UIError("Pick two clips to compare: one as A and one as B.")
    va, vb = H.view(service, a, token), H.view(service, b, token)
    for name, v in (("A", va), ("B", vb)):
        if v.status != "succeeded" or v.video is None:
            raise H.UIError(f"Clip {name}: job {v.job_id} has no clip to play ({v.status}); pick a finished one.")
    rows = [list(r) for r in F.differences(va.request, vb.request)]
    return va, vb, rows


class CompareTab:
    """The tab's components (built inside a ``gr.Tab``); ``publish`` copies a job's file for the browser."""

    def __init__(self, gr, publish) -> None:
        self.gr, self.publish = gr, publish
        gr.Markdown("Pick two clips from your history: they play side by side, in step, and the parameters that "
                    "differ are listed below them.")
        with gr.Row(equal_height=True):
            self.a = gr.Dropdown([], label="Clip A", scale=3, elem_id="t2v-compare-a-job")
            self.b = gr.Dropdown([], label="Clip B", scale=3, elem_id="t2v-compare-b-job")
            self.button = gr.Button("Compare", variant="primary", scale=1, elem_id="t2v-compare")
        self.status = gr.Markdown(elem_id="t2v-compare-status")
        with gr.Row(equal_height=True):
            self.video_a = gr.Video(label="A", interactive=False, loop=True, autoplay=True, height=300,
                                    elem_id="t2v-compare-a")
            self.video_b = gr.Video(label="B", interactive=False, loop=True, autoplay=True, height=300,
                                    elem_id="t2v-compare-b")
        self.table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, wrap=True,
                                  label="Parameters that differ", elem_id="t2v-compare-diff")

    def wire(self, service, key, tab, shown_job) -> None:
        """Fill the pickers when ``tab`` opens (A: ``shown_job``, the Video tab's, if it is a clip; B: the newest
        other one); compare on the button."""
        gr = self.gr
        common = dict(api_visibility="private")

        def on_open(token, shown):
            options = choices(service, token)
            ids = [v for _, v in options]
            a = shown if shown in ids else (ids[0] if ids else None)
            b = next((i for i in ids if i != a), None)
            note = "" if len(ids) >= 2 else "Make at least two clips to compare them."
            return {self.a: gr.update(choices=options, value=a), self.b: gr.update(choices=options, value=b),
                    self.status: note}

        def on_compare(a, b, token):
            va, vb, rows = compare(service, a, b, token)
            copy = self.publish.batch()
            text = (f"{len(rows)} parameters differ." if rows else F.differences_text([]))
            return {self.video_a: copy(va.video), self.video_b: copy(vb.video), self.table: gr.update(value=rows),
                    self.status: text}

        tab.select(E.guarded(self.status, on_open), [key, shown_job], [self.a, self.b, self.status], **common)
        self.button.click(E.guarded(self.status, on_compare), [self.a, self.b, key],
                          [self.video_a, self.video_b, self.table, self.status], **common).then(
            None, None, None, js=SYNC_JS, **common)
