"""The page's History, Remix and Delete buttons, driven through Gradio's own protocol (as the browser does, see
test_private_files.Page) on a real app with the tiny video and SD models: a sequence job picked from the
history shows its figures, its Remix fills the Image sequence tab and switches to it, and failed or cancelled
jobs are listed and can be deleted (#20)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from t2v.ui import handlers as H
from t2v.ui import sequence as S
from tests.api.conftest import make_settings
from tests.ui.test_private_files import Page, urls

gr = pytest.importorskip("gradio")

PICK = {"index": 0, "value": None, "selected": True}


class Events(Page):
    def named(self, elem_id: str, trigger: str, data: list, event_data=None) -> dict:
        """The event's outputs by elem_id (components without one are left out)."""
        dep = self.dep(elem_id, trigger)
        names = {v: k for k, v in self.ids.items()}
        return {names.get(c): out for c, out in zip(dep["outputs"], self.call(elem_id, trigger, data, event_data))}


def value_of(output, default=None):
    """What a component holds after an event's output: an update's value (the browser keeps the old one when
    the update has none), else the output itself."""
    if isinstance(output, dict) and output.get("__type__") == "update":
        return output.get("value", default)
    return default if output is None else output


def wait(service, job_id, timeout=120.0):
    deadline = time.time() + timeout
    while service.get(job_id).status not in H.FINISHED:
        assert time.time() < deadline, f"job {job_id} did not finish"
        time.sleep(0.05)
    return service.get(job_id)


@pytest.fixture
def page(tiny_model, tiny_sd_model, tmp_path, monkeypatch):
    from t2v.ui import mount_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model, default_image_model=str(tiny_sd_model)))
    with TestClient(mount_ui(create_app(service.settings, service=service), service, required=True)) as client:
        yield Events(client, "a-session"), service


def test_a_sequence_job_from_the_history_shows_its_figures_and_remix_fills_the_sequence_tab(page):
    events, service = page
    form = {**S.default_form(service), "keyframes": "0: a red circle\n2: a blue square", "width": 32, "height": 32,
            "num_inference_steps": 2, "fps": 6, "seed": "11", "contact_sheet": True, "denoise_grid": True,
            "grid_steps": "1,2", "method": "prompt-interp"}
    job_id, _ = S.submit(service, form)
    assert wait(service, job_id).status == "succeeded"
    done = S.view(service, job_id)

    history = events.named("t2v-refresh", "click", ["", ""])
    assert len(urls(history["t2v-history"])) == 1
    shown = events.named("t2v-history", "select", [None, ""], PICK)
    assert shown["t2v-job-id"] == job_id and shown["t2v-status"].startswith("Done")
    assert shown["t2v-tabs"].get("selected") == "video"  # where the result panel (Remix, Delete) is
    for elem_id, original in (("t2v-contact-sheet", done.contact_sheet), ("t2v-denoise-grid", done.denoise_grid)):
        (url,) = urls(shown[elem_id])
        assert events.client.get(url).content == original.read_bytes(), elem_id

    remixed = events.named("t2v-remix", "click", [job_id, ""])
    assert remixed["t2v-seq-keyframes"] == form["keyframes"] and remixed["t2v-seq-method"] == "prompt-interp"
    assert remixed["t2v-seq-seed"] == "11" and remixed["t2v-seq-grid-steps"] == "1,2"
    assert remixed["t2v-seq-grid"] is True and remixed["t2v-seq-contact"] is True
    assert remixed["t2v-tabs"].get("selected") == "sequence"
    assert "a red circle" not in str(remixed.get("t2v-prompt"))  # the video form is left alone


def test_failed_and_cancelled_jobs_are_listed_with_their_status_and_can_be_deleted(page):
    events, service = page
    job_id, _ = H.submit(service, {**H.default_form(service), "prompt": "a slow red fox", "num_frames": 4, "width": 32,
                                   "height": 32, "num_inference_steps": 400})
    while service.get(job_id).status == "queued":
        time.sleep(0.02)
    H.cancel(service, job_id)
    assert wait(service, job_id).status == "cancelled"

    history = events.named("t2v-refresh", "click", ["", ""])
    (item,) = history["t2v-history"]["value"]  # (an update: the gallery's items and its label)
    assert item["caption"].startswith("cancelled · a slow red fox") and len(urls(item)) == 1  # a picture to click
    shown = events.named("t2v-history", "select", [None, ""], PICK)
    assert shown["t2v-job-id"] == job_id and shown["t2v-status"] == "Cancelled."
    deleted = events.named("t2v-delete", "click", [job_id, "", ""])
    assert deleted["t2v-status"] == "Deleted the job and its files." and urls(deleted["t2v-history"]) == []
    assert service.repo.get_job(job_id) is None and not (Path(service.settings.videos_dir) / job_id).exists()


def test_remix_of_a_video_job_fills_the_video_tab_with_its_seed_as_text(page):
    events, service = page
    job_id, seed = H.submit(service, {**H.default_form(service), "prompt": "a tiny red square", "num_frames": 4,
                                      "width": 32, "height": 32, "num_inference_steps": 2})
    assert wait(service, job_id).status == "succeeded"
    remixed = events.named("t2v-remix", "click", [job_id, ""])
    assert remixed["t2v-prompt"] == "a tiny red square" and remixed["t2v-tabs"].get("selected") == "video"
    assert (remixed["t2v-seed-mode"], remixed["t2v-seed"]) == ("fixed", str(seed))  # the seed box is a Textbox


def test_generate_with_post_processing_from_the_page_and_remix_restores_it(page):
    # The page's own Generate (its form components' values, as the browser sends them): interpolation 2x gives
    # 2n-1 frames at twice the fps, the result panel names the steps, and Remix puts the options back.
    events, service = page
    values = H.default_form(service)
    by_id = {"t2v-" + k: v for k, v in (("prompt", "a tiny red square"), ("negative", ""), ("model", values["model"]),
                                       ("frames", 4), ("steps", 2), ("guidance", values["guidance_scale"]), ("fps", 6),
                                       ("width", 32), ("height", 32), ("scheduler", values["scheduler"]),
                                       ("seed-mode", "random"), ("seed", ""), ("formats", ["mp4"]),
                                       ("interpolate", "2x"), ("interpolation", "minterpolate"), ("upscale", "Off"), ("upscaler", "lanczos"),
                                       ("deflicker", True), ("key", ""), ("search", ""), ("control-scale", 1.0), ("fit", False))}
    dep = events.dep("t2v-generate", "click")
    names = {v: k for k, v in events.ids.items()}
    assert {"t2v-interpolate", "t2v-interpolation", "t2v-upscale", "t2v-upscaler", "t2v-deflicker"} <= \
        {names.get(i) for i in dep["inputs"]}
    shown = events.named("t2v-generate", "click", [by_id.get(names.get(i)) for i in dep["inputs"]])
    job = service.get(shown["t2v-job-id"])
    assert job.status == "succeeded", job.error
    assert job.request["post"]["interpolate"] == 2 and job.request["post"]["deflicker"] is True
    post = job.result["postprocess"]
    assert [s["name"] for s in post["steps"]] == ["deflicker", "interpolate"]
    assert job.request["post"]["interpolation"] == post["steps"][1]["method"] == "minterpolate"
    assert (post["num_frames"], post["fps"], post["width"]) == (2 * 4 - 1, 12, 32)
    assert "**Post-processing** deflicker · interpolate 2x" in shown["t2v-info"] and "7 frames 32×32 @ 12 fps" in shown["t2v-info"]

    remixed = events.named("t2v-remix", "click", [job.id, ""])
    assert (remixed["t2v-interpolate"], remixed["t2v-upscale"], remixed["t2v-upscaler"], remixed["t2v-deflicker"]) == \
        ("2x", "Off", "lanczos", True)
    assert remixed["t2v-interpolation"] == "minterpolate"  # the method is kept: remade the same way (#24)
    again = events.named("t2v-generate", "click", [value_of(remixed.get(names.get(i)), by_id.get(names.get(i)))
                                                    for i in dep["inputs"]])
    assert service.get(again["t2v-job-id"]).request["post"]["interpolation"] == "minterpolate"


def test_a_longer_video_from_the_page_and_remix_makes_it_again(page):
    # The Longer video accordion as the browser sends it (Seconds a number, the rest text): 2 s at 4 fps of 4-frame
    # segments overlapping by the default 2 -> 8 frames in 3 segments; Remix puts the fields back, the same clip.
    from t2v.export import decode_video

    events, service = page
    values = H.default_form(service)
    by_id = {"t2v-" + k: v for k, v in (("prompt", "a tiny red square"), ("negative", ""), ("model", values["model"]),
                                       ("frames", 4), ("steps", 2), ("guidance", values["guidance_scale"]), ("fps", 4),
                                       ("width", 32), ("height", 32), ("scheduler", values["scheduler"]),
                                       ("seed-mode", "random"), ("seed", ""), ("formats", ["mp4"]),
                                       ("interpolate", "Off"), ("interpolation", "auto"), ("upscale", "Off"),
                                       ("upscaler", "lanczos"), ("deflicker", False), ("seconds", 2),
                                       ("schedule", "0: a tiny red square\n4: a tiny blue circle"), ("overlap", ""),
                                       ("continue-strength", "0.6"), ("key", ""), ("search", ""), ("control-scale", 1.0),
                                       ("fit", False))}
    dep = events.dep("t2v-generate", "click")
    names = {v: k for k, v in events.ids.items()}
    assert {"t2v-seconds", "t2v-schedule", "t2v-overlap", "t2v-continue-strength"} <= {names.get(i) for i in dep["inputs"]}
    shown = events.named("t2v-generate", "click", [by_id.get(names.get(i)) for i in dep["inputs"]])
    job = service.get(shown["t2v-job-id"])
    assert job.status == "succeeded", job.error
    assert (job.request["seconds"], job.request["continue_strength"], job.request.get("overlap")) == (2, 0.6, None)
    assert [s["prompt"] for s in job.result["long"]["segments"]] == ["a tiny red square", "a tiny blue circle",
                                                                   "a tiny blue circle"]
    frames, _ = decode_video(service.file_path(job, "mp4"))
    assert len(frames) == 8

    remixed = events.named("t2v-remix", "click", [job.id, ""])
    assert (remixed["t2v-seconds"], remixed["t2v-schedule"], remixed["t2v-overlap"], remixed["t2v-continue-strength"]) \
        == (2, "0: a tiny red square\n4: a tiny blue circle", "", "0.6")
    again = events.named("t2v-generate", "click", [value_of(remixed.get(names.get(i)), by_id.get(names.get(i)))
                                                    for i in dep["inputs"]])
    again = service.get(again["t2v-job-id"])
    assert again.status == "succeeded", again.error
    assert again.result["frames_sha256"] == job.result["frames_sha256"]  # the seed was fixed by the remix


def test_the_page_queue_polls_every_50_ms_while_idle(tiny_model, tmp_path, monkeypatch):
    """Gradio's queue looks for work every 1 ms on Linux, which kept an idle ``t2v serve`` at about 5% of a core
    (1.4% with the page's queue at 50 ms, its progress loop at 100 ms, Gradio's own values on Windows)."""
    from t2v.ui.app import IDLE_POLL_S, PROGRESS_POLL_S, build_ui

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    service = build_services(make_settings(tmp_path / "home", tiny_model), no_workers=True)
    try:
        queue = build_ui(service)._queue  # a Gradio upgrade that renames these fails here, not silently
        assert (queue.sleep_when_free, queue.progress_update_sleep_when_free) == (IDLE_POLL_S, PROGRESS_POLL_S) == (
            0.05, 0.1)
    finally:
        service.stop()


def test_the_control_box_shows_what_the_chosen_model_takes(page, tmp_path):
    """Choosing a model shows its control inputs: LTX-2 takes one reference clip (no mask, references or
    strength; a strength left from a VACE model goes back to 1), a Wan VACE model all of them."""
    from tests.tinymodels import make_tiny_model

    events, service = page
    ltx2 = make_tiny_model("ltx2", tmp_path / "ltx2", seed=0)
    vace = make_tiny_model("wan-vace", tmp_path / "vace", seed=0)
    menu, names = events.ids["t2v-model"], {v: k for k, v in events.ids.items()}
    dep = next(d for d in events.deps if [menu, "input"] in d["targets"] and events.ids["t2v-control"] in d["outputs"])

    def choose(model: str) -> dict:
        return {names.get(c): out for c, out in zip(dep["outputs"], events.call_fn(dep["id"], menu, [model, ""]))}

    shown = choose(str(ltx2))
    assert shown["t2v-control"]["visible"] is True and shown["t2v-mask-video"]["visible"] is False
    assert shown["t2v-control-scale"]["visible"] is False and shown["t2v-control-scale"]["value"] == 1.0
    assert value_of(shown["t2v-reference-1"]) is None
    shown = choose(str(vace))
    assert shown["t2v-control"]["visible"] is True and shown["t2v-mask-video"]["visible"] is True
    assert shown["t2v-control-scale"]["visible"] is True and "value" not in shown["t2v-control-scale"]
    assert choose(str(service.settings.default_model))["t2v-control"]["visible"] is False
