"""The Gradio page over a JobService: ``build_ui(service)`` and ``mount_ui(fastapi_app, service)``.

All the work is in :mod:`t2v.ui.handlers`; this module lays out components and turns handler results
and :class:`~t2v.ui.handlers.UIError` into component updates. Nothing here touches the database or the
engine. Live progress: the Generate event is a generator that submits the job, then polls the service
a few times a second and yields the queue position, a <progress> bar with step/total and ETA, and the
latent preview image whenever the worker rewrites it, and the clip so far in the player from its first finished
part (a long video's segment, a diffusion-forcing window); when the job ends it yields the player, the
download buttons, seed and timings, and a refreshed history.
"""

import logging
import os
import time
from pathlib import Path

from t2v import frontend as F
from t2v.errors import T2VError
from t2v.requests import FORMATS, SCHEDULERS
import t2v.ui.events as E
import t2v.ui.handlers as H
import t2v.ui.history as HI
import t2v.ui.sequence as S
from t2v.ui.compare_tab import CompareTab
from t2v.ui.files import PrivateCopies
from t2v.ui.handlers import UIError
from t2v.ui.inputs import adapter_inputs, clip_inputs, control_inputs, frame_inputs, run_inputs
from t2v.ui.queue_panel import QueuePanel
from t2v.ui.scripts import CONFIRM_DELETE_JS, KEY_COOKIE_JS
from t2v.ui.sequence_tab import SequenceTab
from t2v.ui.uploads import refuse_url_files

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

logger = logging.getLogger(__name__)

POLL_S = 0.3
HISTORY_LABEL = "Past generations, newest first (click one to show it)"
DOWNLOAD_LABELS = {"mp4": "Download MP4", "webm": "Download WebM", "gif": "Download GIF", "json": "Download record (JSON)"}


def import_gradio():
    try:
        import gradio as gr
    except ImportError:  # optional dependency
        raise T2VError("the web UI needs Gradio: pip install 'gradio>=6'") from None
    return gr


HEADER = ("# t2v · text to video\nDescribe a clip, press **Generate**, watch it denoise. "
          "The REST API of this server is under `/v1` ([docs](/docs)).")


def build_ui(service, *, header: str = HEADER):
    """The Blocks app over ``service`` (its workers are started and stopped by whoever owns the service).
    ``header``: the markdown at the top (the default names the REST API beside the page)."""
    gr = import_gradio()

    form0 = H.default_form(service)
    lim = H.limits(service)

    with gr.Blocks(title="t2v: text to video", analytics_enabled=False, delete_cache=(1800, 7200)) as demo:
        # Files reach the browser only as fresh copies in Gradio's cache, made for the session that asked
        # with a valid key; Gradio never serves $T2V_HOME itself (see t2v.ui.files and mount_ui).
        publish = PrivateCopies(demo.GRADIO_CACHE)
        placeholders = os.path.join(demo.GRADIO_CACHE, "t2v-placeholders")  # history pictures of jobs without one
        gr.Markdown(header)
        with gr.Row(visible=False, elem_id="t2v-key-row") as key_row:
            key = gr.Textbox(label="API key", type="password", placeholder="t2v_…", scale=4, elem_id="t2v-key")
            key_btn = gr.Button("Use key", scale=1, elem_id="t2v-key-button")
        key_msg = gr.Markdown(elem_id="t2v-key-status")

        with gr.Tabs(elem_id="t2v-tabs") as tabs:
            with gr.Tab("Video", id="video", elem_id="t2v-tab-video"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5):
                        # what a run needs first, with Generate, in the first screenful; the rest folded below
                        top = run_inputs(gr, service, form0, lim)
                        prompt, model, generate_btn, cancel_btn, pause_btn, resume_btn, fast_btn, quality_btn = (
                            top[k] for k in ("prompt", "model", "generate", "cancel", "pause", "resume", "fast", "quality"))
                        frames, steps, guidance, width, height, fps, seed_mode, seed = (
                            top[k] for k in ("num_frames", "num_inference_steps", "guidance_scale", "width", "height",
                                             "fps", "seed_mode", "seed"))
                        inputs0 = H.model_inputs(service)
                        image, last_image = frame_inputs(gr, inputs0)
                        source = clip_inputs(gr, inputs0)
                        with gr.Accordion("More settings", open=False, elem_id="t2v-more"):
                            negative = gr.Textbox(label="Negative prompt", value=form0["negative_prompt"], lines=2,
                                                  placeholder="blank: the model's default", elem_id="t2v-negative")
                            with gr.Row():
                                scheduler = gr.Dropdown(list(SCHEDULERS), value=form0["scheduler"], label="Scheduler",
                                                        elem_id="t2v-scheduler")
                                formats = gr.CheckboxGroup(list(FORMATS), value=form0["formats"], label="Output formats",
                                                           info="WebM is always made too, for the player", elem_id="t2v-formats")
                        # after sampling, in this order: deflicker, frame interpolation, upscaling (the request's `post`)
                        with gr.Accordion("Post-processing", open=False, elem_id="t2v-post"):
                            with gr.Row():
                                interpolate = gr.Dropdown(list(F.INTERPOLATE_CHOICES), value=form0["interpolate"],
                                                          label="Interpolation", allow_custom_value=True,
                                                          info="frames per frame (the fps too)", elem_id="t2v-interpolate")
                                interpolation = gr.Dropdown(list(F.INTERPOLATION_CHOICES), value=form0["interpolation"],
                                                            label="Interpolation method", elem_id="t2v-interpolation")
                                upscale = gr.Dropdown(list(F.UPSCALE_CHOICES), value=form0["upscale"], label="Upscale",
                                                      elem_id="t2v-upscale")
                                upscaler = gr.Dropdown(list(F.UPSCALER_CHOICES), value=form0["upscaler"], label="Upscaler",
                                                       allow_custom_value=True, elem_id="t2v-upscaler")
                            deflicker = gr.Checkbox(value=form0["deflicker"], label="Deflicker",
                                                    info="smooth frame-to-frame brightness and colour drift",
                                                    elem_id="t2v-deflicker")
                        # longer videos, in segments of Frames each continuing the one before (see docs/post.md)
                        with gr.Accordion("Longer video", open=False, elem_id="t2v-long"):
                            with gr.Row():
                                seconds = gr.Number(value=form0["seconds"] or 0, step=0.5, label="Seconds",
                                                    info="0: one clip of Frames", elem_id="t2v-seconds")
                                # Textboxes: Gradio's Number sends 0 for an empty box, and blank must mean default
                                overlap = gr.Textbox(value="", label="Overlap", placeholder="blank: the default",
                                                     info="frames shared with what came before", elem_id="t2v-overlap")
                                strength = gr.Textbox(value="", label="Continue strength", placeholder="blank: 0.7",
                                                      info="0-1: how much a continuation repaints",
                                                      elem_id="t2v-continue-strength")
                            schedule = gr.Textbox(value=form0["prompt_schedule"], lines=3, label="Prompt schedule",
                                                  placeholder="0: a red circle moving right\n16: a blue square moving up",
                                                  info="one 'FRAME: prompt' a line; before the first line's frame, the Prompt above is used",
                                                  elem_id="t2v-schedule")
                        loras, few_step = adapter_inputs(gr, form0)
                        control = control_inputs(gr, form0, inputs0)
                        with gr.Row():
                            priority = gr.Number(value=0, precision=0, minimum=-100, maximum=100, label="Priority",
                                                 info="-100 to 100: a higher one starts first", scale=3,
                                                 elem_id="t2v-priority")
                            priority_btn = gr.Button("Set priority", scale=1, elem_id="t2v-set-priority")
                            update_btn = gr.Button("Update queued job", scale=1, elem_id="t2v-update-queued")

                    with gr.Column(scale=6):
                        status = gr.Markdown("Type a prompt and press **Generate**.", elem_id="t2v-status")
                        progress = gr.HTML("", elem_id="t2v-progress")
                        preview = gr.Image(label="Preview while denoising", type="filepath", interactive=False, visible=False,
                                           height=200, elem_id="t2v-preview")
                        video = gr.Video(label="Result", interactive=False, loop=True, autoplay=True, height=320, elem_id="t2v-video")
                        info = gr.Markdown(elem_id="t2v-info")
                        with gr.Row():
                            downloads = {fmt: gr.DownloadButton(DOWNLOAD_LABELS[fmt], visible=False, size="sm",
                                                                elem_id=f"t2v-download-{fmt}") for fmt in H.DOWNLOAD_FORMATS}
                        # an image-sequence job picked from the history: its figures (hidden otherwise)
                        sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False, visible=False,
                                         elem_id="t2v-contact-sheet")
                        grid_image = gr.Image(label="Denoise grid", type="filepath", interactive=False, visible=False,
                                              elem_id="t2v-denoise-grid")
                        with gr.Row():
                            job_id = gr.Textbox(label="Job shown", interactive=False, scale=3, elem_id="t2v-job-id")
                            remix_btn = gr.Button("Remix", scale=1, elem_id="t2v-remix")
                            delete_btn = gr.Button("Delete", variant="stop", scale=1, elem_id="t2v-delete")
                        queue = QueuePanel(gr)
            with gr.Tab("Image sequence", id="sequence", elem_id="t2v-tab-sequence"):
                sequence = SequenceTab(gr, service, publish=publish)
            with gr.Tab("Compare", id="compare", elem_id="t2v-tab-compare") as compare_tab:
                comparing = CompareTab(gr, publish)

        gr.Markdown("## History")
        with gr.Row():
            search = gr.Textbox(label="Search prompts", placeholder="panda", scale=4, elem_id="t2v-search")
            refresh_btn = gr.Button("Refresh", scale=1, elem_id="t2v-refresh")
        gallery = gr.Gallery(label=HISTORY_LABEL, columns=8, height=260,
                             object_fit="contain", fit_columns=False, allow_preview=False, interactive=False, elem_id="t2v-history")
        history_ids = gr.State([])
        last_seed = gr.State(None)

        form = {"prompt": prompt, "negative_prompt": negative, "model": model, "num_frames": frames,
                "num_inference_steps": steps, "guidance_scale": guidance, "fps": fps, "width": width, "height": height,
                "scheduler": scheduler, "seed_mode": seed_mode, "seed": seed, "formats": formats,
                "interpolate": interpolate, "interpolation": interpolation, "upscale": upscale, "upscaler": upscaler, "deflicker": deflicker,
                "seconds": seconds, "prompt_schedule": schedule, "overlap": overlap, "continue_strength": strength,
                "loras": loras, "preset": few_step, "control_scale": control["control_scale"], "fit": control["fit"]}
        clips, refs = [control[k] for k in F.VIDEO_FILE_KEYS], control["references"]
        source_inputs = [source["clip"], source["use"], source["strength"]]
        form_inputs = [form[k] for k in H.FORM_KEYS]
        sliders = ["num_frames", "num_inference_steps", "guidance_scale", "fps", "width", "height", "scheduler"]
        job_buttons = (cancel_btn, pause_btn, resume_btn)
        result_outputs = [status, progress, preview, video, info, job_id, sheet, grid_image, *downloads.values(),
                          *job_buttons]

        def controls(job_status: str | None) -> dict:  # Cancel, Pause, Resume: on only where they act
            return {b: gr.update(interactive=on) for b, on in zip(job_buttons, H.controls(job_status))}

        # -- helpers turning handler results into updates ----------------------------------------
        def show_job(v: H.JobView) -> dict:
            copy = publish.batch()
            out = {status: v.message, progress: H.progress_html(v), job_id: v.job_id, info: v.summary,
                   preview: gr.update(value=None, visible=False),
                   video: copy(v.video), **controls(v.status)}
            for figure, name in ((sheet, "contact_sheet"), (grid_image, "denoise_grid")):  # sequence jobs only
                path = copy(getattr(v, name, None))
                out[figure] = gr.update(value=path, visible=path is not None)
            for fmt, button in downloads.items():  # named after the prompt and the seed
                source = v.downloads.get(fmt)
                path = copy(source, F.clip_filename(v.request, Path(source).suffix)) if source is not None else None
                out[button] = gr.update(value=path, visible=path is not None)
            return out

        def clear_result(message: str) -> dict:
            out = {status: message, progress: "", info: "", job_id: "", video: None,
                   preview: gr.update(value=None, visible=False), **controls(None)}
            out.update({b: gr.update(value=None, visible=False) for b in [sheet, grid_image, *downloads.values()]})
            return out

        def history_updates(query, token) -> dict:
            items = HI.items(service, query, token)  # failed and cancelled jobs too, so they can be deleted
            shown = [(image, i) for i in items
                     if (image := publish(i.image or HI.placeholder(i.status, placeholders))) is not None]
            label = (f"No job matches “{query.strip()}”" if (query or "").strip() and not shown else HISTORY_LABEL)
            return {gallery: gr.update(value=[(image, i.caption) for image, i in shown], label=label),
                    history_ids: [i.job_id for _, i in shown]}

        # -- events ---------------------------------------------------------------------------------
        def on_load(token):
            needs_key = H.auth_required(service)
            out = {key_row: gr.update(visible=needs_key)}
            if needs_key and not token:
                out[key_msg] = "This server runs with API keys: enter yours to generate and see your history."
                return out
            try:
                out.update(history_updates("", token))
            except Exception as e:
                out[key_msg] = E.error_md(e)
            return out

        def on_key(token, query):
            try:
                return {key_msg: H.check_key(service, token), **history_updates(query, token)}
            except Exception as e:
                return {key_msg: E.error_md(e), gallery: [], history_ids: []}

        def on_preset(name):
            return E.guarded(status, lambda m, token: {form[k]: v for k, v in H.preset(service, name, m, token).items()})

        watching: dict[str, str] = {}  # browser session -> the job its page is following

        def on_generate(data: dict, request: gr.Request):
            token, query = data[key], data[search]
            session = getattr(request, "session_hash", None) or ""
            ready = gr.update(interactive=True)  # (Generate is off from the click until the job is queued)
            try:
                jid, used_seed = H.submit(service, {k: data[form[k]] for k in H.FORM_KEYS}, token=token,
                                          last_seed=data[last_seed], image=data[image], last_image=data[last_image],
                                          files={**{k: data[c] for k, c in zip(F.VIDEO_FILE_KEYS, clips)},
                                                 "reference_images": [data[r] for r in refs]},
                                          clip=data[source["clip"]], clip_use=data[source["use"]],
                                          strength=data[source["strength"]])
            except Exception as e:
                yield {**clear_result(E.error_md(e)), generate_btn: ready}  # the last clip goes: it is not this one
                return
            watching[session] = jid  # an older Generate still polling in this page stops
            shown_seed = ("" if data[seed_mode] == "random" else  # random stays random
                          data[seed] if used_seed is None else str(used_seed))  # (a post job draws none)
            yield {**clear_result("Queued."), job_id: jid, last_seed: data[last_seed] if used_seed is None else used_seed,
                   seed: shown_seed,
                   preview: gr.update(value=None, visible=True), generate_btn: ready, **controls("queued")}
            shown, eta, playing = None, H.SteadyEta(), LivePlayer()
            try:
                for v in E.poll(service, jid, token, interval=POLL_S, keep_going=lambda: watching.get(session) == jid):
                    if v.finished:
                        yield {**show_job(v), **history_updates(query, token)}
                        return
                    update = {status: v.message, progress: H.progress_html(v, smooth=eta), **controls(v.status)}
                    stamp = _stamp(v.preview)
                    if stamp is not None and stamp != shown:
                        shown = stamp
                        update[preview] = gr.update(value=publish(v.preview), visible=True)
                    if playing.due(v.live):  # the clip so far plays from its first part
                        update[video] = publish(v.live)
                    yield update
            except Exception as e:
                yield {status: E.error_md(e)}
            finally:
                if watching.get(session) == jid:
                    watching.pop(session, None)

        def acting(action):  # Cancel, Pause or Resume: its message, and the buttons for the job's new state
            return lambda jid, token: {status: action(service, jid, token),
                                       **controls(H.job_status(service, jid, token))}

        on_cancel, on_pause, on_resume = acting(H.cancel), acting(H.pause), acting(H.resume)

        def on_priority(jid, value, token):
            return {status: H.set_priority(service, jid, value, token)}

        def on_update(data: dict):
            return {status: H.update_queued(service, data[job_id], {k: data[form[k]] for k in H.FORM_KEYS},
                                            token=data[key], last_seed=data[last_seed])}

        def on_remix(jid, token):
            tab, values = S.remix_any(service, jid, token)
            loaded = f"Loaded the parameters of job {jid} into the form: change what you like and press Generate."
            if tab == "sequence":  # an image-sequence job: its keyframes, method... go to that tab
                return {**{sequence.form[k]: values[k] for k in S.FORM_KEYS}, sequence.status: loaded,
                        status: f"Job {jid} is an image sequence: its parameters are in the Image sequence tab.",
                        tabs: gr.Tabs(selected="sequence")}
            text = {k: "" if values[k] is None else f"{values[k]:g}" for k in ("overlap", "continue_strength")}
            return {**{form[k]: values[k] for k in H.FORM_KEYS}, seed: str(values["seed"]), status: loaded,
                    seconds: values["seconds"] or 0, overlap: text["overlap"], strength: text["continue_strength"],
                    image: publish(H.remix_file(service, jid, token)), **remix_clip(jid, token),
                    last_image: publish(H.remix_file(service, jid, token, "last_image")), tabs: gr.Tabs(selected="video"),
                    **{c: publish(H.remix_file(service, jid, token, k)) for k, c in zip(F.VIDEO_FILE_KEYS, clips)},
                    **dict(zip(refs, [*map(publish, H.remix_references(service, jid, token)), *[None] * len(refs)]))}

        def remix_clip(jid, token) -> dict:  # the clip a job was made from, and what for (else the box empties)
            request = H.get_job(service, jid, token).request or {}
            field, use = F.clip_of(request)
            try:  # the uses of the job's model (the menu's own change does not fire for a remix)
                uses = F.clip_uses(H.model_inputs(service, request.get("model"), token))
            except UIError:  # a model this server no longer runs: Generate will say so
                uses = F.CLIP_USES
            use = use if use in uses else uses[0]
            return {source["clip"]: publish(H.remix_file(service, jid, token, field)) if field else None,
                    source["use"]: gr.update(choices=list(uses), value=use, info=F.CLIP_HINTS[use]),
                    source["strength"]: "" if request.get("strength") is None else f"{request['strength']:g}"}

        def on_model(m, token):  # the inputs this model takes are shown (a hidden one is emptied), its example
            takes = H.model_inputs(service, m, token)
            shown = {c: gr.update(visible=f in takes, **({} if f in takes else {"value": None}))
                     for c, f in ((image, "image"), (last_image, "last_image"), (control["box"], "control_video"),
                                  *((control[k], k) for k in F.VIDEO_FILE_KEYS[1:]))}
            vace = "reference_images" in takes  # a VACE model: its references and strength (a hidden one emptied)
            shown.update({control["vace"][1]: gr.update(visible=vace),
                          control["vace"][2]: gr.update(visible=vace, **({} if vace else {"value": 1.0})),
                          **{r: gr.update() if vace else gr.update(value=None) for r in refs}})
            uses = F.clip_uses(takes)  # what an uploaded clip can be used for with this model
            note = H.model_note(service, m)  # a model not here: what Generate would do, in one sentence
            return {**shown, prompt: gr.update(placeholder=H.prompt_example(service, m)), **({status: note} if note else {}),
                    source["use"]: gr.update(choices=list(uses), value=uses[0], info=F.CLIP_HINTS[uses[0]])}

        def on_delete(jid, token, query):
            if not jid:  # the confirmation was declined (or nothing is shown)
                return {status: "Nothing deleted."}
            message = H.delete(service, jid, token)
            publish.sweep()  # this page's copies of the job's files go now (other processes' within 30 s)
            return {**clear_result(message), **history_updates(query, token)}

        def on_select(ids, token, evt: gr.SelectData):
            if evt.index is None or not 0 <= evt.index < len(ids):
                raise UIError("That history item is gone: press Refresh.")
            # in the Video tab's result panel (with Remix and Delete); a sequence job with its figures
            return {**show_job(S.view_any(service, ids[evt.index], token)), tabs: gr.Tabs(selected="video")}

        def on_search(query, token):
            return history_updates(query, token)

        common = dict(api_visibility="private")
        demo.load(on_load, [key], [key_row, key_msg, gallery, history_ids], **common)
        # The key also goes in a same-site cookie: the browser's uploads (the first frame) carry no other header.
        key_btn.click(on_key, [key, search], [key_msg, gallery, history_ids], js=KEY_COOKIE_JS, **common)
        key.submit(on_key, [key, search], [key_msg, gallery, history_ids], js=KEY_COOKIE_JS, **common)
        for button, name in ((fast_btn, "Fast preview"), (quality_btn, "Quality")):
            button.click(on_preset(name), [model, key], [status, *(form[k] for k in sliders)], **common)
        model.input(on_preset("Quality"), [model, key], [status, *(form[k] for k in sliders)], **common)
        model.input(E.guarded(status, on_model), [model, key],
                    [status, image, last_image, control["box"], *control["vace"], control["face_video"],
                     control["background_video"], *refs, prompt, source["use"]],
                    **common)
        source["use"].input(lambda use: gr.update(info=F.CLIP_HINTS.get(use, "")), [source["use"]], [source["use"]],
                            **common)
        generate_btn.click(lambda: gr.update(interactive=False), None, [generate_btn], queue=False, **common).then(
                           on_generate, {*form_inputs, image, last_image, *clips, *refs, *source_inputs, key, last_seed,
                                         search},
                           [*result_outputs, last_seed, seed, gallery, history_ids, generate_btn],
                           concurrency_limit=None, trigger_mode="multiple", show_progress="hidden", **common)
        for button, action in zip(job_buttons, (on_cancel, on_pause, on_resume)):
            button.click(E.guarded(status, action), [job_id, key], [status, *job_buttons], **common)
        priority_btn.click(E.guarded(status, on_priority), [job_id, priority, key], [status], **common)
        update_btn.click(E.guarded(status, on_update), {*form_inputs, job_id, key, last_seed}, [status], **common)
        remix_btn.click(E.guarded(status, on_remix), [job_id, key],
                        [status, image, last_image, *clips, *refs, *source_inputs, *form_inputs, *sequence.form.values(),
                         sequence.status, tabs],
                        **common)
        delete_btn.click(E.guarded(status, on_delete), [job_id, key, search], [*result_outputs, gallery, history_ids],
                         js=CONFIRM_DELETE_JS, **common)
        gallery.select(E.guarded(status, on_select), [history_ids, key], [*result_outputs, tabs], **common)
        search.submit(E.guarded(status, on_search), [search, key], [status, gallery, history_ids], **common)
        refresh_btn.click(E.guarded(status, on_search), [search, key], [status, gallery, history_ids], **common)
        sequence.wire(key, history=(search, history_updates, [gallery, history_ids]))
        queue.wire(service, key, show=lambda jid, token: {**show_job(H.view(service, jid, token)),
                                                          tabs: gr.Tabs(selected="video")},
                   status=status, outputs=[*result_outputs, tabs])
        comparing.wire(service, key, compare_tab, job_id)
    demo.queue(default_concurrency_limit=8)
    calm_idle_queue(demo)
    refuse_url_files(gr, demo)
    return demo


#: How often Gradio's queue looks for work while it has none (its values on Windows; on Linux it polls every 1 ms
#: and its progress loop every 10 ms, which kept an idle ``t2v serve`` at about 5% of a core). A page event waits at
#: most this long to start.
IDLE_POLL_S, PROGRESS_POLL_S = 0.05, 0.1


def calm_idle_queue(demo) -> None:
    """Make the page's queue poll at :data:`IDLE_POLL_S` and :data:`PROGRESS_POLL_S` while it is idle."""
    queue = getattr(demo, "_queue", None)  # Gradio has no option for these; each is read at every pass
    for name, seconds in (("sleep_when_free", IDLE_POLL_S), ("progress_update_sleep_when_free", PROGRESS_POLL_S)):
        if isinstance(getattr(queue, name, None), (int, float)):
            setattr(queue, name, max(getattr(queue, name), seconds))


class LivePlayer:
    """When the player gets the running job's clip so far: at its first part, then again once it has grown and
    ``every`` seconds have passed (each new copy starts the player over)."""

    def __init__(self, every: float = 3.0):
        self.every, self.size, self.at = every, 0, 0.0

    def due(self, path) -> bool:
        try:
            size = path.stat().st_size if path is not None else 0
        except OSError:  # removed as the job ended
            return False
        now = time.monotonic()
        if size > self.size and (self.size == 0 or now - self.at >= self.every):
            self.size, self.at = size, now
            return True
        return False


def _stamp(path):
    """(path, mtime) of the live preview, to send it only when the worker has rewritten it."""
    if path is None:
        return None
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:  # replaced between the check and now
        return None



