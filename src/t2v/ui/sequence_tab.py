"""The *Image sequence* tab of the web page: keyframe prompts -> a video from a text-to-image model.

Laid out by ``SequenceTab(gr, service, publish=...)`` inside a ``gr.Tab`` of :func:`t2v.ui.app.build_ui`, wired by
``.wire(key, ...)`` once the page's shared parts (API key box, history) exist. All the work is in
:mod:`t2v.ui.sequence`; this module only turns its results and errors into component updates.
"""

from typing import Any, Callable

import t2v.ui.events as E
import t2v.ui.handlers as H
import t2v.ui.sequence as S
from t2v.ui.files import PrivateCopies

DOWNLOAD_LABELS = {"mp4": "Download MP4", "webm": "Download WebM", "json": "Download record (JSON)"}
METHOD_INFO = ("latent-walk: noise and prompt glide between keyframes · prompt-interp: one noise, moving prompt · "
               "img2img: each frame from the last, with the camera below · interpolate: keyframes only, "
               "frames between blended (fast) · independent: no coherence (baseline)")


class SequenceTab:
    """The tab's components; build it inside ``with gr.Tab(...)``.

    ``publish`` (:class:`t2v.ui.files.PrivateCopies`) turns a job's file into what Gradio may serve: a copy
    for the session that asked (Gradio never serves $T2V_HOME itself).
    """

    def __init__(self, gr, service, *, publish: PrivateCopies) -> None:
        self.gr, self.service, self.publish = gr, service, publish
        f0, lim = S.default_form(service), H.limits(service)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                self.keyframes = gr.Textbox(
                    label="Keyframes", lines=4, placeholder=S.PLACEHOLDER, elem_id="t2v-seq-keyframes",
                    info="one 'INDEX: prompt' per line, in order, starting at 0; the video has last INDEX + 1 frames")
                self.note = gr.Markdown(elem_id="t2v-seq-note")
                self.negative = gr.Textbox(label="Negative prompt", value=f0["negative_prompt"], lines=1,
                                           placeholder="blank: the model's default", elem_id="t2v-seq-negative")
                with gr.Row():
                    self.method = gr.Dropdown(list(S.METHODS), value=f0["method"], label="Method", info=METHOD_INFO,
                                              elem_id="t2v-seq-method")
                    self.model = gr.Textbox(value=f0["model"], label="Model", elem_id="t2v-seq-model",
                                            info="a text-to-image (Stable Diffusion 1.x/2.x) hub id or folder")
                with gr.Row():
                    self.steps = gr.Slider(1, lim["num_inference_steps"], value=f0["num_inference_steps"], step=1,
                                           label="Steps (per frame)", elem_id="t2v-seq-steps")
                    self.guidance = gr.Slider(0, 50, value=f0["guidance_scale"], step=0.5, label="Guidance",
                                              elem_id="t2v-seq-guidance")
                with gr.Row():
                    self.width = gr.Slider(16, lim["width"], value=f0["width"], step=8, label="Width",
                                           info=f"multiple of 8, server limit {lim['width']}", elem_id="t2v-seq-width")
                    self.height = gr.Slider(16, lim["height"], value=f0["height"], step=8, label="Height",
                                            info=f"multiple of 8, server limit {lim['height']}", elem_id="t2v-seq-height")
                with gr.Row():
                    self.fps = gr.Slider(1, 120, value=f0["fps"], step=1, label="FPS", elem_id="t2v-seq-fps")
                    # a Textbox: Gradio's Number sends 0 for an empty box, and blank must mean random
                    self.seed = gr.Textbox(value="", label="Seed", placeholder="blank: random", elem_id="t2v-seq-seed")
                with gr.Accordion("img2img options: strength and camera", open=False,
                                  elem_id="t2v-seq-img2img") as self.img2img:
                    gr.Markdown("Used by the **img2img** method only: each frame starts from the previous one, "
                                "moved by the camera, then noised to *strength* and denoised again.")
                    self.strength = gr.Slider(0.05, 1, value=f0["strength"], step=0.05, label="Strength",
                                              info="how much each frame may change", elem_id="t2v-seq-strength")
                    with gr.Row():
                        self.zoom = gr.Slider(0.5, 2, value=f0["zoom"], step=0.01, label="Zoom per frame",
                                              info="1.02 = 2% closer each frame", elem_id="t2v-seq-zoom")
                        self.rotate = gr.Slider(-45, 45, value=f0["rotate"], step=0.5, label="Rotate (°/frame)",
                                                elem_id="t2v-seq-rotate")
                    with gr.Row():
                        self.pan_x = gr.Slider(-64, 64, value=f0["pan_x"], step=0.5, label="Pan x (px/frame)",
                                               elem_id="t2v-seq-pan-x")
                        self.pan_y = gr.Slider(-64, 64, value=f0["pan_y"], step=0.5, label="Pan y (px/frame)",
                                               elem_id="t2v-seq-pan-y")
                with gr.Row():
                    self.contact = gr.Checkbox(value=f0["contact_sheet"], label="Contact sheet",
                                               info="every frame in one image", elem_id="t2v-seq-contact")
                    self.grid = gr.Checkbox(value=f0["denoise_grid"], label="Denoise grid",
                                            info="each keyframe at chosen steps", elem_id="t2v-seq-grid")
                    self.grid_steps = gr.Textbox(value=f0["grid_steps"], label="Denoise grid steps",
                                                 info="'auto' (4 evenly spaced) or e.g. 1,5,10", elem_id="t2v-seq-grid-steps")
                with gr.Row():
                    self.generate = gr.Button("Generate", variant="primary", elem_id="t2v-seq-generate")
                    self.cancel = gr.Button("Cancel", variant="stop", elem_id="t2v-seq-cancel")

            with gr.Column(scale=6):
                self.status = gr.Markdown("Write keyframes and press **Generate**.", elem_id="t2v-seq-status")
                self.progress = gr.HTML("", elem_id="t2v-seq-progress")
                self.video = gr.Video(label="Result", interactive=False, loop=True, autoplay=False, height=360,
                                      elem_id="t2v-seq-video")
                self.info = gr.Markdown(elem_id="t2v-seq-info")
                with gr.Row():
                    self.downloads = {fmt: gr.DownloadButton(DOWNLOAD_LABELS[fmt], visible=False, size="sm",
                                                             elem_id=f"t2v-seq-download-{fmt}")
                                      for fmt in S.DOWNLOAD_FORMATS}
                self.job_id = gr.Textbox(label="Job shown", interactive=False, elem_id="t2v-seq-job-id")
                self.sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False, visible=False,
                                      elem_id="t2v-seq-contact-sheet")
                self.grid_image = gr.Image(label="Denoise grid", type="filepath", interactive=False, visible=False,
                                           elem_id="t2v-seq-denoise-grid")

        self.form = {"keyframes": self.keyframes, "method": self.method, "model": self.model,
                     "negative_prompt": self.negative, "seed": self.seed, "num_inference_steps": self.steps,
                     "guidance_scale": self.guidance, "width": self.width, "height": self.height, "fps": self.fps,
                     "strength": self.strength, "zoom": self.zoom, "pan_x": self.pan_x, "pan_y": self.pan_y,
                     "rotate": self.rotate, "contact_sheet": self.contact, "denoise_grid": self.grid,
                     "grid_steps": self.grid_steps}
        self.results = [self.status, self.progress, self.video, self.info, self.job_id, self.sheet, self.grid_image,
                        *self.downloads.values()]

    # -- handler results -> component updates ---------------------------------------------------------
    def _image(self, path) -> Any:
        return self.gr.update(value=path, visible=path is not None)

    def show(self, v: S.SequenceView) -> dict:
        copy = self.publish.batch()
        out = {self.status: v.message, self.progress: S.progress_html(v), self.job_id: v.job_id, self.info: v.summary,
               self.video: copy(v.video),
               self.sheet: self._image(copy(v.contact_sheet)), self.grid_image: self._image(copy(v.denoise_grid))}
        for fmt, button in self.downloads.items():
            path = copy(v.downloads.get(fmt))
            out[button] = self.gr.update(value=path, visible=path is not None)
        return out

    def clear(self, message: str) -> dict:
        out = {self.status: message, self.progress: "", self.info: "", self.job_id: "", self.video: None,
               self.sheet: self._image(None), self.grid_image: self._image(None)}
        out.update({b: self.gr.update(value=None, visible=False) for b in self.downloads.values()})
        return out

    # -- events -------------------------------------------------------------------------------------
    def wire(self, key, *, history: tuple[Any, Callable[[str, str], dict], list] | None = None,
             poll_s: float = 0.3) -> None:
        """Attach the events. ``key``: the page's API key box; ``history``: (search box, updates(query, token),
        its output components), refreshed when a job ends."""
        gr, service = self.gr, self.service
        search, history_updates, history_outputs = history or (None, None, [])
        watching: dict[str, str] = {}  # browser session -> the job this tab follows

        def on_generate(data: dict, request: gr.Request):
            token = data[key]
            session = getattr(request, "session_hash", None) or ""
            try:
                jid, seed = S.submit(service, {k: data[c] for k, c in self.form.items()}, token=token)
            except Exception as e:
                yield {self.status: E.error_md(e)}
                return
            watching[session] = jid  # an older Generate still polling in this tab stops
            yield {**self.clear(f"Queued (seed {seed})."), self.job_id: jid}
            try:
                for v in S.poll(service, jid, token, interval=poll_s, keep_going=lambda: watching.get(session) == jid):
                    if v.finished:
                        done = self.show(v)
                        if history_updates is not None:
                            done.update(history_updates(data[search] if search is not None else "", token))
                        yield done
                    else:
                        yield {self.status: v.message, self.progress: S.progress_html(v)}
            except Exception as e:
                yield {self.status: E.error_md(e)}
            finally:
                if watching.get(session) == jid:
                    watching.pop(session, None)

        def on_cancel(jid, token):
            return {self.status: H.cancel(service, jid, token)}

        common = dict(api_visibility="private")
        inputs = {*self.form.values(), key} | ({search} if search is not None else set())
        self.generate.click(on_generate, inputs, [*self.results, *history_outputs], concurrency_limit=None,
                            trigger_mode="multiple", show_progress="hidden", **common)
        self.cancel.click(E.guarded(self.status, on_cancel), [self.job_id, key], [self.status], **common)
        for event in (self.keyframes.change, self.fps.input, self.fps.release):
            event(S.frames_note, [self.keyframes, self.fps], [self.note], show_progress="hidden", **common)
        self.method.change(lambda m: gr.update(open=m == "img2img"), [self.method], [self.img2img],
                           show_progress="hidden", **common)
