"""The web UI's handlers against a real JobService on the tiny model (no browser, no Gradio).

Adds about a minute: the page's handlers make real videos through the service, and one test starts ``t2v ui`` as a
process."""

from __future__ import annotations

import json

import shutil
import time

import pytest

from t2v.models.publicnames import public_model
from t2v.service import build_services
from t2v.service.keys import create_key
from t2v.ui import handlers as H
from t2v.ui import history as HI
from t2v.ui.handlers import UIError
from tests.api.conftest import make_settings

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def form(service, prompt="a red fox running through snow", **changes):
    return {**H.default_form(service), "prompt": prompt, **SMALL, **changes}


def wait_view(service, job_id, cond=lambda v: v.finished, token=None, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = H.view(service, job_id, token)
        if cond(v):
            return v
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {v.status} (step {v.step}) after {timeout}s")


@pytest.fixture
def idle(tiny_model, tmp_path):
    """A service whose workers have not started: jobs stay queued until ``.start()``."""
    svc = build_services(make_settings(tmp_path / "home", tiny_model))
    yield svc
    svc.stop()


@pytest.fixture
def service(idle):
    return idle.start()


def test_bad_values_give_messages_naming_the_field_and_queue_nothing(idle):
    idle.settings.max_frames = 16
    cases = [
        (dict(prompt="   "), "prompt", "Prompt:"),
        (dict(width=52), "width", "Width: must be a multiple of 8, got 52"),
        (dict(num_frames=17), "num_frames", "Frames: 17 is over this server's limit of 16"),
        (dict(num_frames=2.5), "num_frames", "Frames: must be a whole number"),
        (dict(num_inference_steps="many"), "num_inference_steps", "Steps: 'many' is not a number"),
        (dict(guidance_scale=80), "guidance_scale", "Guidance:"),
        (dict(scheduler="bogus"), "scheduler", "Scheduler: unknown scheduler 'bogus'"),
        (dict(seed_mode="fixed", seed="abc"), "seed", "Seed: 'abc' is not a number"),
        (dict(seed_mode="fixed", seed="4.5"), "seed", "Seed: must be a whole number"),
        (dict(seed_mode="fixed", seed=-1), "seed", "Seed:"),
        (dict(seed_mode="reuse last"), "seed", "no previous generation"),
        (dict(formats=["avi"]), "formats", "Output formats: unknown format 'avi'"),
        # Outside the model roots: the one answer that says nothing about the path (#17).
        (dict(model="/no/such/model-folder"), "model", "Model unavailable: this model is not available on this server"),
    ]
    for changes, field, text in cases:
        with pytest.raises(UIError) as e:
            H.submit(idle, form(idle, **{"prompt": "a cat", **changes}))
        assert e.value.field == field, changes
        assert text in str(e.value), (changes, str(e.value))
        assert "Traceback" not in str(e.value)
    assert idle.list() == []


def test_a_blank_seed_box_means_a_random_seed_drawn_and_recorded(idle):
    # The page's seed box is a Textbox (a gr.Number sends 0 for an empty box): blank or cleared -> random.
    seeds = []
    for blank in (None, "", "   "):
        assert "seed" not in H.request_fields(idle, form(idle, seed_mode="fixed", seed=blank))
        job_id, seed = H.submit(idle, form(idle, seed_mode="fixed", seed=blank))
        assert idle.get(job_id).request["seed"] == seed and isinstance(seed, int)
        seeds.append(seed)
    assert 0 not in seeds and len(set(seeds)) == 3  # drawn afresh each time, never the empty box's 0
    job_id, seed = H.submit(idle, form(idle, seed_mode="fixed", seed=" 42 "))
    assert seed == 42 == idle.get(job_id).request["seed"]
    assert H.submit(idle, form(idle, seed_mode="fixed", seed=0))[1] == 0  # a typed 0 is still seed 0


def test_queue_position_then_progress_then_result_with_files_seed_and_timings(idle):
    first, _ = H.submit(idle, form(idle, "first"))
    second, seed = H.submit(idle, form(idle, "second", formats=["mp4"]))  # WebM is added for the player
    v = H.view(idle, second)
    assert (v.status, v.queue_position, v.message) == ("queued", 2, "Queued: position 2 in the queue.")
    assert "position 2" in H.progress_html(v)
    assert idle.get(second).request["formats"] == ["mp4", "webm"]

    idle.start()
    done = wait_view(idle, second)
    assert done.status == "succeeded", done.error
    assert set(done.downloads) == {"mp4", "webm", "json"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in done.downloads.values())
    assert done.video == done.downloads["webm"] and done.poster is not None
    assert done.seed == seed == done.request["seed"]
    assert done.timings["total_s"] > 0 and done.timings["denoise_s"] > 0
    assert f"**Seed** {seed}" in done.summary and "total" in done.summary
    assert done.message.startswith("Done in") and f"Seed {seed}." in done.message
    assert done.fraction == 1.0 and '<progress value="2" max="2">' in H.progress_html(done)
    assert H.view(idle, first).status == "succeeded"
    assert set(H.view(idle, first).downloads) == {"mp4", "webm", "gif", "json"}  # the form's default formats


def test_live_progress_preview_and_cancel(service):
    job_id, _ = H.submit(service, form(service, num_inference_steps=300))
    v = wait_view(service, job_id, lambda v: v.finished or (v.stage == "denoise" and v.step >= 1 and v.preview))
    assert v.status == "running" and v.total == 300
    assert f"step {v.step} of 300" in v.message
    assert f'<progress value="{v.step}" max="300">' in H.progress_html(v)
    assert v.preview.is_file() and v.preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert H.cancel(service, job_id).startswith("Cancelling")
    v = wait_view(service, job_id)
    assert v.status == "cancelled" and v.message == "Cancelled." and v.step < 300
    assert H.cancel(service, job_id) == "Nothing to cancel: the job has already been cancelled."


def test_pause_and_resume_a_running_job_from_the_page(service):
    job_id, _ = H.submit(service, form(service, num_inference_steps=60))
    wait_view(service, job_id, lambda v: v.finished or (v.stage == "denoise" and v.step >= 2))
    assert H.pause(service, job_id).startswith("Pausing")
    v = wait_view(service, job_id, lambda v: v.status == "paused")
    assert v.message.startswith("Paused") and H.progress_html(v) == ""
    assert H.resume(service, job_id).startswith("Resumed")
    v = wait_view(service, job_id)
    assert v.status == "succeeded" and v.step == 60
    with pytest.raises(UIError, match="only a queued or running job"):
        H.pause(service, job_id)


def test_pause_and_resume_a_queued_job(idle):
    job_id, _ = H.submit(idle, form(idle))
    assert H.controls(H.job_status(idle, job_id)) == (True, True, False)  # Cancel, Pause on; Resume off
    assert H.pause(idle, job_id) == "Paused: the job waits until you press Resume."
    assert H.view(idle, job_id).status == "paused"
    assert H.controls(H.job_status(idle, job_id)) == (True, False, True)
    assert H.resume(idle, job_id).startswith("Resumed")
    assert H.view(idle, job_id).status == "queued"
    with pytest.raises(UIError, match="only a paused job can be resumed"):
        H.resume(idle, job_id)
    later, _ = H.submit(idle, form(idle, "a blue heron"))
    assert H.set_priority(idle, later, 10) == "Priority 10: position 1 in the queue."
    with pytest.raises(UIError, match="priority: 500 is not a whole number from -100 to 100"):
        H.set_priority(idle, later, 500)
    with pytest.raises(UIError, match="Priority: give a whole number"):
        H.set_priority(idle, later, "soon")
    assert H.update_queued(idle, later, form(idle, "a green heron", num_inference_steps=3)).startswith("Updated")
    changed = idle.get(later)
    assert (changed.request["prompt"], changed.request["num_inference_steps"]) == ("a green heron", 3)
    with pytest.raises(UIError, match="Width: must be a multiple of 8, got 33; nearest valid: 32"):
        H.update_queued(idle, later, form(idle, "a heron", width=33))


def test_cancel_a_queued_job_at_once(idle):
    job_id, _ = H.submit(idle, form(idle))
    assert H.cancel(idle, job_id) == "Cancelled."
    assert H.view(idle, job_id).status == "cancelled"
    assert H.controls(H.job_status(idle, job_id)) == H.controls(None) == (False, False, False)
    assert H.job_status(idle, "") is None
    with pytest.raises(UIError, match="No job is selected"):
        H.cancel(idle, "")
    kept, _ = H.submit(idle, form(idle, "a blue heron"))  # still queued: not history yet
    assert [(i.job_id, i.status, i.image) for i in HI.items(idle)] == [(job_id, "cancelled", None)]
    assert HI.items(idle)[0].caption.startswith("cancelled · a red fox")
    assert [i.job_id for i in HI.items(idle, "heron")] == []
    assert H.delete(idle, job_id) == "Deleted the job and its files."
    assert HI.items(idle) == [] and idle.repo.get_job(job_id) is None and idle.get(kept).status == "queued"


def test_history_newest_first_search_and_delete(service):
    ids = [H.submit(service, form(service, p))[0] for p in ("Red fox in snow", "blue whale", "a red panda")]
    for job_id in ids:
        assert wait_view(service, job_id).status == "succeeded"
    items = HI.items(service)
    assert [i.job_id for i in items] == ids[::-1]
    assert all(i.image.is_file() for i in items) and "blue whale" in items[1].caption
    assert [i.job_id for i in HI.items(service, "RED")] == [ids[2], ids[0]]
    assert HI.items(service, "no such prompt") == []

    folder = service.settings.videos_dir / ids[1]
    assert folder.is_dir()
    assert H.delete(service, ids[1]) == "Deleted the job and its files."
    assert [i.job_id for i in HI.items(service)] == [ids[2], ids[0]]
    assert not folder.exists()
    with pytest.raises(UIError, match="does not exist"):
        H.view(service, ids[1])


def test_remix_loads_the_parameters_and_remaking_gives_the_same_frames(service):
    job_id, seed = H.submit(service, form(service, "a lighthouse at dusk", guidance_scale=7.5, fps=12, scheduler="euler"))
    first = wait_view(service, job_id)
    remixed = H.remix(service, job_id)
    assert set(remixed) == set(H.FORM_KEYS)
    assert remixed["seed_mode"] == "fixed" and remixed["seed"] == seed
    r = service.get(job_id).request
    for k in ("prompt", "negative_prompt", "model", "num_frames", "num_inference_steps", "guidance_scale", "fps",
              "width", "height", "scheduler"):
        assert remixed[k] == (public_model(service.settings, r[k]) if k == "model" else r[k]), k
    assert "/" not in remixed["model"]  # the server's folder by its name, never its path
    assert remixed["guidance_scale"] == 7.5 and remixed["scheduler"] == "euler" and remixed["fps"] == 12

    again_id, again_seed = H.submit(service, remixed)
    assert again_seed == seed
    again = service.get(wait_view(service, again_id).job_id)
    assert again.result["frames_sha256"] == service.get(first.job_id).result["frames_sha256"]

    # "reuse last" takes the seed of the page's last job, or else the newest job's
    assert H.request_fields(service, {**form(service), "seed_mode": "reuse last"}, last_seed=99)["seed"] == 99
    assert H.request_fields(service, {**form(service), "seed_mode": "reuse last"})["seed"] == seed
    assert "seed" not in H.request_fields(service, {**form(service), "seed_mode": "random", "seed": 5})


def test_a_longer_video_from_the_form_has_its_seconds_in_frames_and_remix_keeps_its_fields(service):
    # as tests/extend's CLI run: 2.5 s at 8 fps of 6-frame segments overlapping by 2 -> 20 frames, 5 segments
    from t2v.export import decode_video

    long = form(service, "a ball", num_frames=6, fps=8, seed_mode="fixed", seed="4", seconds=2.5,
                prompt_schedule="0: a ball\n\n  10: a cube  \n", overlap="2", continue_strength="")
    fields = H.request_fields(service, long)
    assert (fields["seconds"], fields["prompt_schedule"], fields["overlap"]) == (2.5, ["0: a ball", "10: a cube"], 2)
    assert "continue_strength" not in fields  # blank: the default
    assert not {"seconds", "prompt_schedule", "overlap"} & set(H.request_fields(service, form(service, seconds=0)))

    job_id, _ = H.submit(service, long)
    done = wait_view(service, job_id)
    assert done.status == "succeeded", done.error
    frames, fps = decode_video(done.video)
    assert len(frames) == 20 and fps == 8
    job = service.get(job_id)
    assert job.request["seconds"] == 2.5 and job.request["overlap"] == 2
    segments = job.result["long"]["segments"]
    assert [s["prompt"] for s in segments] == ["a ball", "a ball", "a cube", "a cube", "a cube"]

    remixed = H.remix(service, job_id)
    assert (remixed["seconds"], remixed["prompt_schedule"], remixed["overlap"]) == (2.5, "0: a ball\n10: a cube", 2)
    assert remixed["continue_strength"] is None
    again = H.request_fields(service, remixed)
    assert {k: again[k] for k in ("seconds", "prompt_schedule", "overlap", "seed")} == \
        {"seconds": 2.5, "prompt_schedule": ["0: a ball", "10: a cube"], "overlap": 2, "seed": 4}


def test_bad_longer_video_values_name_their_field_and_queue_nothing(idle):
    cases = [
        (dict(seconds=2, prompt_schedule="0: a ball\nten: a cube"), "prompt_schedule",
         "Prompt schedule: entry 2: 'ten: a cube' is not 'INDEX: prompt'"),
        (dict(seconds=2, prompt_schedule="8: a cube\n4: a ball"), "prompt_schedule", "Prompt schedule: entry 2: frame 4"),
        (dict(seconds="two"), "seconds", "Seconds: 'two' is not a number"),
        (dict(seconds=-1), "seconds", "Seconds:"),
        (dict(overlap="2"), "overlap", "Overlap: only longer videos take it"),
        (dict(seconds=2, overlap="1.5"), "overlap", "Overlap: must be a whole number"),
        (dict(seconds=2, continue_strength="1.5"), "continue_strength", "Continue strength:"),
        (dict(seconds=2, num_frames=4, overlap="4"), "overlap", "Overlap: 4 frames leave no new frame"),  # the service's check
    ]
    for changes, field, text in cases:
        with pytest.raises(UIError) as e:
            H.submit(idle, form(idle, **changes))
        assert e.value.field == field, changes
        assert text in str(e.value), (changes, str(e.value))
        assert "Traceback" not in str(e.value)
    assert idle.list() == []


def test_presets_follow_the_model_and_the_server_limits(idle):
    quality = H.preset(idle, "Quality")  # the tiny model's own defaults: 64x64, 8 frames, 4 steps
    assert (quality["width"], quality["height"], quality["num_frames"], quality["num_inference_steps"]) == (64, 64, 8, 4)
    fast = H.preset(idle, "Fast preview")
    assert fast["num_inference_steps"] < quality["num_inference_steps"]
    assert (fast["width"], fast["height"]) == (quality["width"], quality["height"])  # the trained 64x64
    assert H.default_form(idle)["num_frames"] == quality["num_frames"]
    modelscope = H.preset(idle, "Quality", "modelscope")
    assert (modelscope["width"], modelscope["num_inference_steps"]) == (256, 25)

    idle.settings.max_steps, idle.settings.max_frames, idle.settings.max_side = 3, 5, 48
    assert H.limits(idle) == {"num_frames": 5, "num_inference_steps": 3, "width": 48, "height": 48}
    for name in H.PRESETS:
        p = H.preset(idle, name, "modelscope")
        assert p["num_inference_steps"] <= 3 and p["num_frames"] <= 5, name
        assert p["width"] <= 48 and p["height"] <= 48 and p["width"] % 8 == 0, name
        H.request_fields(idle, {**H.default_form(idle), **p, "prompt": "x"})  # valid as it stands
    with pytest.raises(UIError, match="unknown preset"):
        H.preset(idle, "Ultra")


def test_api_key_mode_shows_only_that_keys_jobs_and_rejects_bad_keys(idle):
    assert H.auth_required(idle) is False and H.authorize(idle, "anything") is None
    alice_row, alice = create_key(idle.repo.keys, "alice", max_queued=2)
    _, bob = create_key(idle.repo.keys, "bob")
    assert H.auth_required(idle) is True
    for token, text in ((None, "needs an API key"), ("", "needs an API key"), ("t2v_wrong", "not valid")):
        with pytest.raises(UIError, match=text) as e:
            H.submit(idle, form(idle), token=token)
        assert e.value.field == "api_key"
        with pytest.raises(UIError, match=text):
            HI.items(idle, token=token)
    assert "alice" in H.check_key(idle, alice)

    a1, _ = H.submit(idle, form(idle, "alice one"), token=alice)
    a2, _ = H.submit(idle, form(idle, "alice two"), token=alice)
    with pytest.raises(UIError, match="Too many jobs"):
        H.submit(idle, form(idle, "alice three"), token=alice)
    b1, _ = H.submit(idle, form(idle, "bob one"), token=bob)
    idle.start()
    for job_id, token in ((a1, alice), (a2, alice), (b1, bob)):
        assert wait_view(idle, job_id, token=token).status == "succeeded"
    assert [i.job_id for i in HI.items(idle, token=alice)] == [a2, a1]
    assert [i.job_id for i in HI.items(idle, token=bob)] == [b1]
    with pytest.raises(UIError) as missing:
        H.view(idle, "01NOSUCHJ0B000000000000000", alice)
    for call in (H.view, H.remix, H.cancel, H.delete):  # another key's job reads as a missing one: no probing ids
        with pytest.raises(UIError) as e:
            call(idle, b1, alice)
        assert str(e.value) == str(missing.value) and "does not exist" in str(e.value)
    assert H.view(idle, b1, bob).status == "succeeded"

    idle.repo.keys.revoke_key(alice_row.id)
    with pytest.raises(UIError, match="not valid"):
        HI.items(idle, token=alice)


def test_the_page_counts_against_the_keys_rate_limit_as_the_api_does(idle):
    _, carol = create_key(idle.repo.keys, "carol", rate="3/minute")
    HI.items(idle, token=carol)
    job_id, _ = H.submit(idle, form(idle), token=carol)
    for _ in range(5):  # watching a job is not counted (nor is it through the API's event stream)
        H.view(idle, job_id, carol)
    H.cancel(idle, job_id, carol)
    for call in (lambda: H.submit(idle, form(idle, "one more"), token=carol), lambda: HI.items(idle, token=carol),
                 lambda: H.delete(idle, job_id, carol)):
        with pytest.raises(UIError, match=r"rate limit \(3/minute\) is used up: try again in \d+ s") as e:
            call()
        assert e.value.field == "api_key"
    assert len(idle.list()) == 1


def test_presets_read_no_model_folder_the_server_would_refuse(idle, tmp_path):
    outside = tmp_path / "outside"  # a model folder outside the server's model roots
    outside.mkdir()
    (outside / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    _, dave = create_key(idle.repo.keys, "dave")
    with pytest.raises(UIError, match="needs an API key"):
        H.preset(idle, "Quality", str(outside))
    answers = set()
    for model in (str(outside), str(tmp_path / "missing"), "/etc"):
        with pytest.raises(UIError) as e:
            H.preset(idle, "Quality", model, dave)
        answers.add(str(e.value).replace(model, "M"))
    assert len(answers) == 1, answers  # the same answer whatever is at the path
    assert H.preset(idle, "Quality", None, dave)["num_frames"] == 8  # the server's own model still reads


def test_failed_job_shows_a_readable_error(model_copy, tmp_path):
    svc = build_services(make_settings(tmp_path / "home2", model_copy))
    try:
        job_id, _ = H.submit(svc, form(svc))
        shutil.rmtree(model_copy / "unet")  # the model breaks after the job was accepted
        svc.start()
        v = wait_view(svc, job_id)
        assert v.status == "failed"
        assert v.message.startswith("Job failed: ") and "unet" in v.message
        assert "Traceback" not in v.message and "\n" not in v.message
        assert H.progress_html(v) == "" and v.summary == "" and v.downloads == {}
        (item,) = HI.items(svc)  # listed with its status and error, so the page can show and delete it (#20)
        assert (item.job_id, item.status) == (job_id, "failed") and "unet" in item.error
        assert item.caption.startswith(f"⚠ failed: {item.error[:40]}") and "a red fox" in item.caption  # error cut short
        sign = HI.placeholder(item.status, tmp_path / "ui") if item.image is None else item.image
        assert sign.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert H.delete(svc, job_id) == "Deleted the job and its files."
        assert HI.items(svc) == [] and svc.repo.get_job(job_id) is None
    finally:
        svc.stop()


def test_the_page_mounted_at_root_leaves_the_api_routes_alone(idle):
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from t2v.ui import mount_ui

    app = mount_ui(create_app(idle.settings, service=idle, start_workers=False), idle)
    with TestClient(app) as client:
        assert client.get("/v1/models").json()["default"] == public_model(idle.settings, idle.settings.default_model)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503  # no workers in this app: the API's answer, not the page
        assert "/v1/videos" in client.get("/openapi.json").json()["paths"]
        assert "swagger" in client.get("/docs").text.lower()
        assert "t2v_jobs" in client.get("/metrics").text
        assert client.get("/v1/videos/nope").json()["detail"] == "no job with id nope"
        page = client.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        config = client.get("/config").json()
        ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
        assert {"t2v-prompt", "t2v-generate", "t2v-cancel", "t2v-video", "t2v-history", "t2v-remix"} <= ids
        assert {"t2v-interpolate", "t2v-upscale", "t2v-upscaler", "t2v-deflicker"} <= ids  # in "Post-processing"
        assert {"t2v-seconds", "t2v-schedule", "t2v-overlap", "t2v-continue-strength"} <= ids  # in "Longer video"
        types = {c.get("props", {}).get("elem_id"): c.get("type") for c in config["components"]}
        assert types["t2v-seed"] == types["t2v-seq-seed"] == "textbox"  # blank is sent as "", not as 0
        assert types["t2v-overlap"] == types["t2v-continue-strength"] == "textbox"  # blank: the default
        assert not config.get("run_history")  # the browser never stores inputs (an API key among them)


@pytest.mark.slow
def test_t2v_ui_serves_the_page_and_the_api(tiny_model, tmp_path):
    import os
    import subprocess
    import sys

    import httpx

    from tests.api.test_server import free_port
    from tests.web import HTTP

    port = free_port()
    env = {**os.environ, "T2V_HOME": str(tmp_path / "home"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    proc = subprocess.Popen([sys.executable, "-m", "t2v", "ui", "--port", str(port), "--model", str(tiny_model)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if HTTP.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "t2v ui did not become ready"
            time.sleep(0.2)
        page = HTTP.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        models = HTTP.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).json()
        assert models["default"] == tiny_model.name  # the folder's public name
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode in (0, -15) and "Traceback" not in output, output  # uvicorn re-raises SIGTERM
    assert f"t2v UI on http://127.0.0.1:{port}/" in output


def test_loras_and_the_few_step_preset_go_from_the_form_into_the_job_and_back(service, tiny_model, tmp_path):
    from diffusers import UNet3DConditionModel

    from t2v.models.lora import add_lora, save_lora

    unet = UNet3DConditionModel.from_pretrained(tiny_model, subfolder="unet")
    adapter = save_lora(unet, add_lora(unet, rank=2), tmp_path / "loras" / "style", {"base": "tiny"}).resolve()
    service.settings.model_roots = str(tmp_path / "loras")
    job_id, _ = H.submit(service, form(service, loras=f"\n{adapter}:0.7\n", preset="none"))
    assert wait_view(service, job_id).status == "succeeded"
    r = service.get(job_id).request
    assert [(e["path"], e["scale"]) for e in r["loras"]] == [(str(adapter), 0.7)] and r["preset"] == "none"
    remixed = H.remix(service, job_id)
    assert (remixed["loras"], remixed["preset"]) == (f"{adapter}:0.7", "none")
    for lines, words in (("/etc/passwd", "LoRAs:"), (f"{adapter}\n{adapter}", "LoRAs: entry 1")):
        with pytest.raises(UIError) as e:
            H.submit(service, form(service, loras=lines))
        assert str(e.value).startswith(words) and e.value.field == "loras", str(e.value)
    with pytest.raises(UIError, match="Few-step preset: unknown 'turbo'"):
        H.submit(service, form(service, preset="turbo"))


def test_a_first_and_last_frame_from_the_page_make_a_first_last_frame_job_and_come_back_with_remix(tmp_path):
    import numpy as np
    from PIL import Image

    from tests.tinymodels import make_tiny_model

    model = make_tiny_model("wan-flf2v", tmp_path / "flf", seed=0)
    svc = build_services(make_settings(tmp_path / "home", model)).start()
    try:
        frames = []
        for i, name in enumerate(("first", "last")):
            path = tmp_path / f"{name}.png"
            Image.fromarray(np.full((32, 64, 3), 60 + 120 * i, np.uint8)).save(path)
            frames.append(path)
        fields = {**H.default_form(svc), "prompt": "a flower opens", "num_frames": 5, "width": 64, "height": 32,
                  "num_inference_steps": 2}
        with pytest.raises(UIError) as e:  # an FLF2V model needs both: named before anything is queued
            H.submit(svc, fields, image=frames[0])
        assert str(e.value).startswith("Last frame:") and e.value.field == "last_image"
        assert svc.list(limit=5) == []
        job_id, _ = H.submit(svc, fields, image=frames[0], last_image=frames[1])
        assert wait_view(svc, job_id).status == "succeeded", svc.get(job_id).error
        r = svc.get(job_id)
        assert r.request["last_image"] != r.request["image"]
        record = r.result  # the job's record
        assert record["last_image_sha256"] and record["image_sha256"]
        back = H.remix_file(svc, job_id, None, "last_image")
        assert back is not None and back.read_bytes() == frames[1].read_bytes()
    finally:
        svc.stop()


def test_control_clips_and_references_from_the_page_make_a_vace_job_and_come_back_with_remix(tmp_path):
    import numpy as np
    from PIL import Image

    from t2v.export.writers import write_video
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model("wan-vace", tmp_path / "vace", seed=0)
    svc = build_services(make_settings(tmp_path / "home", model)).start()
    try:
        yy, xx = np.mgrid[0:32, 0:64]
        clip = np.stack([np.stack([(xx * 3 + i * 9) % 256, yy * 7 % 256, (xx + i) % 256], -1) for i in range(5)])
        write_video(clip.astype(np.uint8), tmp_path / "pose.mp4", "mp4", 8, crf=4)
        write_video(np.zeros((5, 48, 48, 3), np.uint8) + 128, tmp_path / "square.mp4", "mp4", 8, crf=4)
        refs = []
        for i in range(2):
            refs.append(tmp_path / f"ref{i}.png")
            Image.fromarray(np.full((40, 24, 3), 50 + 100 * i, np.uint8)).save(refs[-1])
        fields = {**H.default_form(svc), "prompt": "a dancer", "num_frames": 5, "width": 64, "height": 32,
                  "num_inference_steps": 2, "control_scale": 0.6}
        with pytest.raises(UIError) as e:  # 48x48: named before anything is queued, fit offered
            H.submit(svc, fields, files={"control_video": tmp_path / "square.mp4"})
        assert str(e.value).startswith("Control video:") and "fit" in str(e.value) and svc.list(limit=5) == []
        with pytest.raises(UIError) as e:  # a picture where a clip goes
            H.submit(svc, fields, files={"control_video": refs[0]})
        assert e.value.field == "control_video" and svc.list(limit=5) == []
        job_id, _ = H.submit(svc, fields, files={"control_video": tmp_path / "pose.mp4", "mask_video": None,
                                                 "reference_images": [refs[0], None, refs[1], None]})
        assert wait_view(svc, job_id).status == "succeeded", svc.get(job_id).error
        r = svc.get(job_id)
        assert len(r.request["reference_images"]) == 2 and r.request["control_scale"] == 0.6
        assert r.result["control_video_sha256"] and len(r.result["reference_images_sha256"]) == 2
        assert H.remix_file(svc, job_id, None, "control_video").read_bytes() == (tmp_path / "pose.mp4").read_bytes()
        assert [p.read_bytes() for p in H.remix_references(svc, job_id)] == [p.read_bytes() for p in refs]
        assert H.remix(svc, job_id)["control_scale"] == 0.6
    finally:
        svc.stop()


def test_a_character_pose_and_face_from_the_page_make_an_animate_job_and_come_back_with_remix(tmp_path):
    import numpy as np
    from PIL import Image

    from t2v.export.writers import write_video
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model("wan-animate", tmp_path / "animate", seed=0)
    svc = build_services(make_settings(tmp_path / "home", model)).start()
    try:
        yy, xx = np.mgrid[0:32, 0:32]
        clip = np.stack([np.stack([(xx * 3 + i * 9) % 256, yy * 7 % 256, (xx + i) % 256], -1) for i in range(5)])
        write_video(clip.astype(np.uint8), tmp_path / "pose.mp4", "mp4", 8, crf=4)
        write_video(clip[:, ::-1, :24].astype(np.uint8), tmp_path / "face.mp4", "mp4", 8, crf=4)
        Image.fromarray(np.full((40, 24, 3), 90, np.uint8)).save(tmp_path / "character.png")
        fields = {**H.default_form(svc), "prompt": "a dancer", "num_frames": 5, "num_inference_steps": 2}
        with pytest.raises(UIError) as e:  # no face video: named before anything is queued
            H.submit(svc, fields, image=tmp_path / "character.png", files={"control_video": tmp_path / "pose.mp4"})
        assert e.value.field == "face_video" and svc.list(limit=5) == []
        job_id, _ = H.submit(svc, fields, image=tmp_path / "character.png",
                             files={"control_video": tmp_path / "pose.mp4", "face_video": tmp_path / "face.mp4",
                                    "mask_video": None, "background_video": None})
        assert wait_view(svc, job_id).status == "succeeded", svc.get(job_id).error
        r = svc.get(job_id)
        assert r.result["face_video_sha256"] and r.result["control_video_sha256"] and r.result["image_sha256"]
        assert H.remix_file(svc, job_id, None, "face_video").read_bytes() == (tmp_path / "face.mp4").read_bytes()
        assert H.model_inputs(svc, str(model)) == ("image", "control_video", "face_video", "mask_video",
                                                   "background_video")
    finally:
        svc.stop()


def test_a_fast_preview_of_t2v_shapes_still_shows_the_shape(tmp_path):
    """Fewer steps at the shapes model's own 64x64: a red circle is there to see (a 32x32 clip of this model is
    black: below the size it was trained at)."""
    import numpy as np

    from t2v.export import decode_video

    svc = build_services(make_settings(tmp_path / "home", "t2v-shapes")).start()
    try:
        fast = H.preset(svc, "Fast preview")
        assert (fast["width"], fast["height"]) == (64, 64) and fast["num_inference_steps"] < 25
        job_id, _ = H.submit(svc, {**H.default_form(svc), **fast, "prompt": "a red circle moving right", "seed": 3,
                                   "seed_mode": "fixed", "formats": ["mp4"]})
        assert wait_view(svc, job_id).status == "succeeded", svc.get(job_id).error
        frames = decode_video(svc.file_path(svc.get(job_id), "mp4"))[0]
        red = frames[..., 0].astype(int) - frames[..., 1:].astype(int).max(-1)
        assert frames.max() > 120 and (red > 60).mean() > 0.01, (frames.max(), (red > 60).mean())
    finally:
        svc.stop()


def test_the_inputs_a_model_takes_follow_the_model(idle, tmp_path):
    from tests.tinymodels import make_tiny_model

    assert H.model_inputs(idle) == ("video", "extend")  # the tiny ModelScope model: text, or a clip to start from
    assert H.model_inputs(idle, "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers") == ("image", "last_image", "video", "extend")
    assert H.model_inputs(idle, "wan2.1-vace-1.3b") == ("control_video", "mask_video", "reference_images")
    assert H.model_inputs(idle, "Lightricks/LTX-Video") == ("image", "video", "extend")
    assert H.model_inputs(idle, "stable-diffusion-v1-5/stable-diffusion-v1-5") == ()  # images: no clip
    vace = make_tiny_model("wan-vace", tmp_path / "vace", seed=0)  # a folder: read from it (under the roots)
    assert H.model_inputs(idle, str(vace)) == ("control_video", "mask_video", "reference_images")
    # LTX-2: a first and a last frame, an IC-LoRA's reference video (no VACE mask or references), and a clip to
    # continue (extend), which its reference does not replace
    ltx2 = make_tiny_model("ltx2", tmp_path / "ltx2", seed=0)
    assert H.model_inputs(idle, str(ltx2)) == ("image", "last_image", "control_video", "extend")
    assert H.model_inputs(idle, "Lightricks/LTX-2") == ("image", "last_image", "extend")


def test_the_model_menu_says_what_each_model_makes_and_whether_it_is_here(tmp_path):
    from t2v.settings import Settings

    svc = build_services(Settings(home=tmp_path / "home"))  # nobody chose a model; ModelScope is not downloaded
    assert svc.settings.default_model == "t2v-shapes"  # so the pages open on the shipped one, which runs
    choices = dict((value, label) for label, value in H.model_choices(svc))
    assert list(choices)[0] == "t2v-shapes" and choices["t2v-shapes"].endswith("ready")
    wan = choices["Wan-AI/Wan2.1-T2V-1.3B-Diffusers"]
    assert "· video ·" in wan and "not downloaded, 28.9 GB" in wan and "8.2 GB VRAM" in wan and "Apache-2.0" in wan
    assert "· image-to-video ·" in choices["Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"]
    assert "· image ·" in choices["stable-diffusion-v1-5/stable-diffusion-v1-5"]
    groups = [label.split(" · ")[1] for label, _ in H.model_choices(svc)[1:]]
    assert groups == sorted(groups, key=["video", "image-to-video", "image"].index)  # grouped by what they make
    assert H.model_note(svc, "t2v-shapes") == ""
    assert H.model_note(svc, "wan") == ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers is not downloaded on this server (28.9 GB): "
                                        "its admin can fetch it with `t2v models pull Wan-AI/Wan2.1-T2V-1.3B-Diffusers`.")
    svc.settings.allow_downloads = True
    assert "the first Generate downloads it (28.9 GB)" in H.model_note(svc, "wan")
    chosen = build_services(Settings(home=tmp_path / "home2", default_model="damo-vilab/text-to-video-ms-1.7b"))
    assert chosen.settings.default_model == "damo-vilab/text-to-video-ms-1.7b"  # a chosen model is kept
