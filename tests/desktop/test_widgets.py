"""The desktop app's widgets under Xvfb, against a real ``t2v serve`` (tiny model, API keys on).

Adds more than a minute and a half: each test drives the Tk app under Xvfb against a real server, which the app
starts itself in one test."""

from __future__ import annotations

import hashlib
import threading
from types import SimpleNamespace
from pathlib import Path
from tkinter import ttk

import httpx
import numpy as np
import pytest

from t2v import frontend as F
from t2v.client import Client
from tests.api.test_assets import tiny_i2v as tiny_i2v  # a fixture
from tests.desktop.conftest import SMALL, decoded, fill_small, pump, ready
from tests.web import HTTP


def test_the_bridge_runs_work_off_the_tk_thread_and_hands_results_back_on_it(root):
    from t2v.desktop.bridge import Bridge

    bridge = Bridge(root)
    tk_thread = threading.get_ident()
    seen: dict = {}
    bridge.run(threading.get_ident, done=lambda worker: seen.update(worker=worker, done_on=threading.get_ident()))
    bridge.run(lambda: 1 / 0, failed=lambda e: seen.update(error=e))
    bridge.stream(lambda: iter([1, 2, 3]), item=lambda x: seen.setdefault("items", []).append(x),
                  done=lambda _: seen.update(streamed=True))
    pump(root, lambda: {"done_on", "error", "streamed"} <= seen.keys(), 10, "the bridge")
    assert seen["worker"] != tk_thread and seen["done_on"] == tk_thread
    assert isinstance(seen["error"], ZeroDivisionError) and seen["items"] == [1, 2, 3]
    assert bridge.pending == 0
    bridge.close()


def test_the_player_loops_the_frames_pyav_decodes(root, tmp_path):
    import av
    from tkinter import ttk

    from t2v.desktop.player import Player, decode

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    path = tmp_path / "clip.webm"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=8)
        s.width, s.height, s.pix_fmt = 32, 16, "yuv420p"
        for rgb in colours:
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), rgb, np.uint8), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    frames, fps = decode(path, max_side=64)
    assert len(frames) == 4 and fps == 8 and frames[0].size == (64, 32)
    for image, rgb in zip(frames, colours):
        assert np.abs(np.asarray(image).astype(int)[8:24, 16:48] - rgb).max() < 40  # the frame's colour, in order
    label = ttk.Label(root)
    label.pack()
    player = Player(label)
    player.start(frames, fps)
    pump(root, lambda: player.shown >= 9, 10, "two loops of the clip")
    assert player.playing and player.index == player.shown % 4
    player.stop()
    assert not player.playing
    with pytest.raises(Exception):
        decode(tmp_path / "missing.mp4")


def test_the_player_shrinks_a_clip_to_a_smaller_box_and_grows_it_back(root):
    """A player given less room than the clip needs shows the whole picture smaller, never a cut-off part of it;
    with room again the picture is back at its own size."""
    from PIL import Image

    from t2v.desktop.player import Player

    box = ttk.Frame(root, width=200, height=150)
    box.pack_propagate(False)  # the frame keeps its size: the label gets what the frame has, not what it asks
    box.pack()
    label = ttk.Label(box, anchor="center")
    label.pack(fill="both", expand=True)
    player = Player(label)
    frames = [Image.new("RGB", (320, 240), colour) for colour in ("red", "blue")]
    root.update()
    def within(w: int, h: int) -> bool:  # the label's border takes a pixel or two
        size = player.picture_size()
        return size is not None and w - 6 <= size[0] <= w and h - 6 <= size[1] <= h

    player.start(frames, 8)
    pump(root, lambda: within(200, 150), 5, "the picture at the box's size")
    root.update()
    assert within(200, 150) and player.playing
    assert len({(p.width(), p.height()) for p in player.photos}) == 1
    box.configure(width=400, height=300)
    pump(root, lambda: player.picture_size() == [320, 240], 5, "the picture back at its own size")
    player.show_still(Image.new("RGB", (600, 600), "green"))  # a preview larger than the room: fitted too
    assert within(300, 300)
    player.stop()


def test_without_a_key_the_window_says_so_instead_of_a_traceback(root, server, make_app, tmp_path, capsys):
    app = make_app(key=None)
    pump(root, lambda: app.error.cget("text"), 30, "the key error", app)
    assert "API key" in app.error.cget("text") and not app.form.models
    assert "Traceback" not in capsys.readouterr().err
    app.key_var.set(server.key)
    app.connect(app.key_var.get())
    pump(root, lambda: ready(app), 30, "the models", app)
    assert app.error.cget("text") == ""


def test_models_come_with_their_limits_and_presets_stay_within_them(root, server, make_app, tmp_path):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    models = list(app.form.models)
    assert models[0] == server.name  # the server's own model (by its public name) first, then the catalogue
    assert "Lightricks/LTX-Video" in models and "zai-org/CogVideoX-2b" in models
    assert app.form.vars["model"].get() == server.name
    assert app.form.vars["num_frames"].get() == "8" and app.form.vars["width"].get() == "64"  # its defaults
    assert str(app.form.image.cget("state")) == "disabled"  # the tiny ModelScope model has no image-to-video
    app.form.model.set("Lightricks/LTX-Video")
    app.choose_model("Lightricks/LTX-Video")
    assert "8k+1 frames" in app.form.limits_note.cget("text") and "multiple of 32" in app.form.limits_note.cget("text")
    assert str(app.form.image.cget("state")) == "normal"
    assert float(app.form.spins["num_frames"].cget("increment")) == 8
    frames, width = int(app.form.vars["num_frames"].get()), int(app.form.vars["width"].get())
    assert (frames - 1) % 8 == 0 and width % 32 == 0
    app.apply_preset("Fast preview")
    fast = int(app.form.vars["num_inference_steps"].get())
    assert fast <= 8 and (int(app.form.vars["num_frames"].get()) - 1) % 8 == 0


def test_bad_input_is_named_in_the_window_and_sends_nothing(root, server, make_app, tmp_path):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    before = len(Client(server.url, server.key).list(limit=100).items)
    app.generate()
    assert app.error.cget("text") == "⚠ Prompt: describe the video you want first"
    fill_small(app, "a red ball", seed_mode="fixed", seed="4.5")
    app.generate()
    assert "Seed: must be a whole number, got 4.5" in app.error.cget("text")
    fill_small(app, "a red ball", seed_mode="random", width=30)  # the server refuses it, naming the field
    app.generate()
    pump(root, lambda: app.error.cget("text"), 30, "the server's answer", app)
    assert app.error.cget("text").startswith("⚠ Width: ") and "nearest valid: 32" in app.error.cget("text")
    assert str(app.generate_button.cget("state")) == "normal"
    assert len(Client(server.url, server.key).list(limit=100).items) == before


def test_generate_plays_the_clip_then_remix_makes_the_same_frames(root, server, make_app, tmp_path):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    fill_small(app, "a zebra crossing a road", seed_mode="random")
    statuses = []
    show = app.show_view
    app.show_view = lambda v: (statuses.append(v.status), show(v))
    app.generate_button.invoke()
    pump(root, lambda: app.clip is not None and app.player.playing, 120, "the clip to play", app)
    assert "running" in statuses and statuses[-1] == "succeeded"
    assert app.progress.cget("value") == 1000 and app.view.seed is not None
    first = app.clip
    assert first.is_file() and first.parent == tmp_path / "clips"
    frames = decoded(first)
    assert frames.shape == (4, 32, 32, 3)
    assert len(app.player.photos) == 4 and app.player.photos[0].width() == 360
    pump(root, lambda: app.job_id in app.history.jobs, 30, "the job in the history", app)
    assert app.history.table.set(app.job_id, "status") == "succeeded"
    job = app.history.jobs[app.job_id]
    app.remix(job)
    assert app.form.vars["seed_mode"].get() == "fixed" and app.form.vars["seed"].get() == str(job.request["seed"])
    app.generate_button.invoke()
    # (the first clip plays on until the new one is in: wait for the new clip itself, not just any playing)
    pump(root, lambda: app.job_id != job.id and app.clip not in (None, first) and app.player.playing, 120,
         "the remixed clip", app)
    assert app.clip != first and np.array_equal(decoded(app.clip), frames)  # same seed, same frames

    saved = app.save_as(tmp_path / "keep.mp4")
    assert saved.read_bytes() == app.clip.read_bytes()
    assert app.save_as(tmp_path / "keep.gif") is None and "must end in .mp4" in app.error.cget("text")
    assert not (tmp_path / "keep.gif").exists() and not list(tmp_path.glob("*.part"))


def test_post_processing_options_interpolate_the_clip_and_come_back_with_remix(root, server, make_app, tmp_path):
    from t2v import frontend as F

    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    form = app.form
    assert tuple(form.post["interpolate"].cget("values")) == F.INTERPOLATE_CHOICES
    assert tuple(form.post["upscale"].cget("values")) == F.UPSCALE_CHOICES
    assert tuple(form.post["upscaler"].cget("values")) == F.UPSCALER_CHOICES
    assert tuple(form.post["interpolation"].cget("values")) == F.INTERPOLATION_CHOICES
    assert {k: form.values()[k] for k in F.POST_KEYS} == F.POST_DEFAULTS  # all off: no post block
    fill_small(app, "a heron taking off", seed_mode="random", interpolate="2x", interpolation="blend")
    form.deflicker_box.invoke()
    assert F.request_fields(form.values(), None)["post"] == {"deflicker": True, "interpolate": 2, "interpolation": "blend"}
    app.generate_button.invoke()
    pump(root, lambda: app.clip is not None and app.player.playing, 120, "the interpolated clip", app)
    job = Client(server.url, server.key).get(app.job_id)
    post = job.result.metadata["postprocess"]
    assert job.request["post"]["interpolate"] == 2 and [s["name"] for s in post["steps"]] == ["deflicker", "interpolate"]
    assert post["steps"][1]["method"] == "blend"
    assert post["num_frames"] == 2 * SMALL["num_frames"] - 1 == len(app.player.photos) == decoded(app.clip).shape[0]
    assert "Post-processing: deflicker · interpolate 2x" in app.summary.cget("text")
    assert f"→ {post['num_frames']} frames 32×32" in app.summary.cget("text")

    form.fill(F.POST_DEFAULTS)
    assert F.request_fields(form.values(), None).get("post") is None
    app.remix(job)
    assert (form.vars["interpolate"].get(), form.vars["upscale"].get(), form.deflicker.get()) == ("2x", "Off", True)
    assert form.vars["interpolation"].get() == "blend"  # the method comes back too (#24)


def test_longer_video_options_make_their_seconds_of_frames_and_come_back_with_remix(root, server, make_app, tmp_path):
    # as tests/extend's CLI run: 2.5 s at 8 fps of 6-frame segments overlapping by 2 -> 20 frames
    from t2v import frontend as F

    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    form = app.form
    assert {k: form.values()[k] for k in F.LONG_KEYS} == dict.fromkeys(F.LONG_KEYS, "")
    fill_small(app, "a ball", seed_mode="fixed", seed="4", num_frames=6, fps=8, seconds=2.5, overlap=2,
               prompt_schedule="0: a ball\nten: a cube")
    assert not set(F.LONG_KEYS) & set(F.request_fields({**form.values(), **F.LONG_DEFAULTS}, None))
    before = len(Client(server.url, server.key).list(limit=100).items)
    app.generate()  # a bad schedule line: named at once, nothing sent
    assert app.error.cget("text").startswith("⚠ Prompt schedule: entry 2: 'ten: a cube' is not 'INDEX: prompt'")
    assert len(Client(server.url, server.key).list(limit=100).items) == before

    form.fill({"prompt_schedule": "0: a ball\n10: a cube"})
    fields = F.request_fields(form.values(), None)
    assert (fields["seconds"], fields["prompt_schedule"], fields["overlap"]) == (2.5, ["0: a ball", "10: a cube"], 2)
    assert "continue_strength" not in fields  # blank: the server's default
    app.generate_button.invoke()
    pump(root, lambda: app.clip is not None and app.player.playing, 180, "the longer clip", app)
    job = Client(server.url, server.key).get(app.job_id)
    assert (job.request["seconds"], job.request["overlap"]) == (2.5, 2)
    assert len(app.player.photos) == decoded(app.clip).shape[0] == 20

    form.fill(F.LONG_DEFAULTS)
    assert not set(F.LONG_KEYS) & set(F.request_fields(form.values(), None))
    app.remix(job)
    assert (form.vars["seconds"].get(), form.vars["overlap"].get(), form.vars["continue_strength"].get()) == \
        ("2.5", "2", "")
    assert form.values()["prompt_schedule"] == "0: a ball\n10: a cube"


def test_a_long_video_plays_its_first_parts_while_the_job_runs(root, server, make_app):
    """--seconds in segments: the player gets the clip so far (the server's growing mp4) from the first segment
    and plays it while the job runs; cancelled, the player is cleared."""
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    fill_small(app, "a slow river", num_frames=6, fps=8, seconds=8, overlap=2, num_inference_steps=120)
    app.generate_button.invoke()
    pump(root, lambda: app.player.playing and app.live.frames > 0, 180, "the clip so far playing", app)
    assert app.view.status == "running" and app.view.step < app.view.total
    shown = app.player.shown
    pump(root, lambda: app.player.shown > shown + 2, 30, "the frames advancing", app)
    assert Client(server.url, server.key).get(app.job_id).status == "running"
    app.cancel()
    pump(root, lambda: app.view.status == "cancelled", 60, "the cancel", app)
    assert not app.player.playing


def test_pause_then_resume_a_running_job(root, server, make_app):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    fill_small(app, "a patient heron", num_inference_steps=60)
    app.generate_button.invoke()
    pump(root, lambda: app.view is not None and app.view.status == "running" and app.view.step >= 2, 60, "a step", app)
    assert app.pause_button.cget("text") == "Pause"
    app.pause_button.invoke()
    pump(root, lambda: app.view.status == "paused", 60, "the pause", app)
    assert app.pause_button.cget("text") == "Resume" and app.status.cget("text").startswith("Paused")
    stopped = app.view.step
    app.pause_button.invoke()
    pump(root, lambda: app.view.status == "succeeded", 90, "the resumed job", app)
    record = HTTP.get(f"{server.url}/v1/videos/{app.job_id}/metadata",
                       headers={"Authorization": f"Bearer {server.key}"}).json()
    assert record["resumed_from_step"] >= min(stopped, 2) and str(app.pause_button.cget("state")) == "disabled"


def test_a_queued_jobs_priority_moves_it_up(root, server, make_app):
    headers = {"Authorization": f"Bearer {server.other}"}  # another user keeps the worker busy and the queue full
    body = {"prompt": "someone else's long job", "num_frames": 4, "width": 48, "height": 48, "num_inference_steps": 60}
    theirs = [HTTP.post(f"{server.url}/v1/videos", json=body, headers=headers).json()["id"] for _ in range(3)]
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    fill_small(app, "an impatient owl")
    app.generate_button.invoke()
    pump(root, lambda: app.view is not None and app.view.status == "queued" and app.view.queue_position, 60,
         "the queued job", app)
    before = app.view.queue_position
    app.priority.set(10)  # the key's highest (T2V_MAX_PRIORITY)
    app.priority_button.invoke()
    pump(root, lambda: app.view.queue_position == 1, 30, "the job at the head of the queue", app)
    assert before > 1
    fill_small(app, "a patient owl", num_inference_steps=3)
    app.update_button.invoke()
    # The app's next poll may show the changed job before the update's own answer arrives: wait for that answer.
    pump(root, lambda: app.status.cget("text").startswith("Updated"), 30, "the update's confirmation", app)
    assert app.view.request["prompt"] == "a patient owl" and app.view.request["num_inference_steps"] == 3
    app.show_view(app.view)  # the job's next event, its status unchanged: the confirmation stays a few seconds
    assert app.status.cget("text").startswith("Updated")
    app.notice = (app.notice[0], 0.0, app.notice[2])  # those seconds over: the job's own message again
    app.show_view(app.view)
    assert app.status.cget("text") == app.view.message
    app.priority.set(500)
    app.priority_button.invoke()
    pump(root, lambda: "priority" in app.error.cget("text"), 30, "the refusal", app)
    for job_id in theirs:
        HTTP.delete(f"{server.url}/v1/videos/{job_id}", headers=headers)


def test_cancel_delete_search_and_keys_through_the_history(root, server, make_app, tmp_path):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    fill_small(app, "a slow walrus", num_inference_steps=60)
    app.generate_button.invoke()
    pump(root, lambda: app.view is not None and app.view.status == "running" and app.view.step >= 1, 60, "a step", app)
    app.cancel_button.invoke()
    pump(root, lambda: app.view.status == "cancelled", 60, "the cancellation", app)
    assert app.status.cget("text") == "Cancelled."
    walrus = app.job_id
    pump(root, lambda: walrus in app.history.jobs, 30, "the cancelled job in the history", app)
    assert app.history.table.set(walrus, "status") == "cancelled"

    app.history.query.set("walrus")
    app.search("walrus")
    pump(root, lambda: list(app.history.jobs) == [walrus], 30, "the search", app)
    app.history.table.selection_set(walrus)
    app.history.act(app.delete)
    pump(root, lambda: walrus not in app.history.jobs, 30, "the deletion", app)
    assert HTTP.get(f"{server.url}/v1/videos/{walrus}", headers={"Authorization": f"Bearer {server.key}"}).status_code == 404
    app.history.table.selection_remove(*app.history.table.selection())
    app.history.act(app.remix)
    assert app.error.cget("text") == "⚠ History: select a job first"

    app.history.query.set("")
    app.connect(server.other)  # another user's key sees none of this key's jobs
    pump(root, lambda: ready(app) and app.history.note.cget("text") == "0 jobs", 30, "the other key's history", app)
    assert app.history.jobs == {}


def test_without_a_server_the_app_starts_a_private_one_and_stops_it(root, tiny_model, tmp_path):
    import os

    from t2v.desktop.app import DesktopApp
    from t2v.desktop.local import LocalServer

    env = {k: v for k, v in os.environ.items() if not k.startswith("T2V_") or k == "T2V_CPU_BF16"}
    env.update(T2V_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", T2V_OFFLINE="1",
               T2V_MODEL_ROOTS=str(Path(tiny_model).parent))
    local = LocalServer(str(tiny_model), env=env)
    assert local.command()[-5:] == ["--port", str(local.port), "--no-ui", "--model", str(tiny_model)]
    app = DesktopApp(root, None, downloads=tmp_path, theme=False, local=local)
    assert "Starting a local t2v server" in app.status.cget("text")
    pump(root, lambda: ready(app), 120, "the private server", app)
    assert app.url == f"http://127.0.0.1:{local.port}" and "(local)" in app.server_label.cget("text")
    assert HTTP.get(f"{app.url}/healthz").status_code == 200
    assert HTTP.get(f"{app.url}/").status_code == 404  # no web page in the app's private server
    app.close()
    assert local.proc.poll() is not None
    with pytest.raises(httpx.HTTPError):
        HTTP.get(f"{local.url}/healthz", timeout=2)


def test_image_to_video_uploads_the_first_frame_and_plays_the_clip(root, tiny_i2v, tmp_path, tmp_path_factory):
    from t2v.desktop.app import DesktopApp
    from tests.api.test_assets import I2V, png
    from tests.servers import make_keys, serve

    home = tmp_path / "home"
    home.mkdir()
    key, = make_keys(home, ("main", {}))
    with serve(home, str(tiny_i2v), model_roots=tmp_path_factory.getbasetemp()) as s:
        app = DesktopApp(root, s.url, key, downloads=tmp_path / "clips", theme=False)
        try:
            pump(root, lambda: ready(app), 60, "the models", app)
            assert str(app.form.image.cget("state")) == "normal"  # the Wan I2V model takes a first frame
            app.form.fill({"prompt": "a cat turns", **I2V})
            app.form.vars["image"].set(str(tmp_path / "missing.png"))
            app.generate()
            assert "First frame: " in app.error.cget("text") and "is not a file" in app.error.cget("text")
            picture = tmp_path / "cat.png"
            picture.write_bytes(png(40, 24))
            app.form.vars["image"].set(str(picture))
            app.generate_button.invoke()
            pump(root, lambda: app.clip is not None and app.player.playing, 180, "the image-to-video clip", app)
            job = Client(s.url, key).get(app.job_id)
            asset = Client(s.url, key).get_asset(job.request["image"])
            assert asset.width == 40 and asset.height == 24
            assert len(app.player.photos) == decoded(app.clip).shape[0] == job.request["num_frames"]
        finally:
            app.close()


def test_open_file_and_folder_use_the_desktops_opener(root, server, make_app, tmp_path, monkeypatch):
    from t2v.desktop import tasks

    app = make_app()
    app.open_file()
    assert app.error.cget("text") == "⚠ No clip yet: generate one or show one from the history"
    opened = []
    monkeypatch.setattr(tasks.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(tasks.subprocess, "Popen", lambda cmd, **kw: opened.append(cmd))
    app.clip = tmp_path / "clip.mp4"
    app.clip.write_bytes(b"x")
    app.open_file()
    app.open_folder()
    opener = "open" if tasks.sys.platform == "darwin" else "xdg-open"
    assert opened == [[opener, str(app.clip)], [opener, str(tmp_path)]]
    monkeypatch.setattr(tasks.shutil, "which", lambda name: None)
    app.open_file()
    assert f"({opener} is missing); the file is {app.clip}" in app.error.cget("text")


def test_loras_and_the_few_step_preset_in_the_form_and_a_bad_line_named_before_sending(root, server, make_app):
    from t2v import frontend as F

    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    form = app.form
    assert (form.values()["loras"], form.values()["preset"]) == ("", "auto")
    assert not {"loras", "preset"} & set(F.request_fields({**form.values(), "prompt": "x"}, None))
    fill_small(app, "a heron", loras="/models/style.safetensors:0.8\n/models/fast:1/0.5@high", preset="lightx2v")
    fields = F.request_fields(form.values(), None)
    assert fields["loras"] == ["/models/style.safetensors:0.8", "/models/fast:1/0.5@high"]
    assert fields["preset"] == "lightx2v"
    request = {"loras": [{"path": "/models/style.safetensors", "scale": 0.8, "scale_low": None, "experts": "both"}],
               "preset": "none"}
    form.fill(F.adapter_form(request))  # what a remix puts back
    assert (form.values()["loras"], form.values()["preset"]) == ("/models/style.safetensors:0.8", "none")
    before = len(Client(server.url, server.key).list(limit=100).items)
    form.fill({"loras": "/models/a.safetensors:5"})
    app.generate()  # a strength out of range: named at once, nothing sent
    assert app.error.cget("text").startswith("⚠ LoRAs:"), app.error.cget("text")
    assert len(Client(server.url, server.key).list(limit=100).items) == before


def test_a_last_frame_is_uploaded_as_an_asset_and_checked_by_the_server(server, tmp_path):
    from PIL import Image

    from t2v import frontend as F
    from t2v.desktop.tasks import submit_job
    from t2v.errors import InvalidRequest

    png = tmp_path / "last.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(png)
    client = Client(server.url, server.key)
    before = len(client.list(limit=100).items)
    form = {**F.default_form("", {}), "prompt": "a heron", **SMALL}
    with pytest.raises(InvalidRequest) as e:  # this model makes no first-last-frame video: the server says so
        submit_job(client, form, png, None, last_image=png)
    assert "last_image" in str(e.value), str(e.value)
    assert len(client.list(limit=100).items) == before


def test_vace_clips_and_references_from_the_form_are_uploaded_and_make_the_job(root, server, make_app, tmp_path,
                                                                               tmp_path_factory):
    from PIL import Image

    from t2v.export.writers import write_video
    from tests.tinymodels import make_tiny

    vace = make_tiny(tmp_path_factory.mktemp("desktop-vace") / "vace", family="wan-vace", seed=0)
    yy, xx = np.mgrid[0:32, 0:32]
    clip = np.stack([np.stack([(xx * 7 + i * 20) % 256, yy * 5 % 256, (xx + i) % 256], -1) for i in range(5)])
    write_video(clip.astype(np.uint8), tmp_path / "pose.mp4", "mp4", 8, crf=4)
    refs = [tmp_path / "a.png", tmp_path / "b.png"]
    for i, ref in enumerate(refs):
        Image.new("RGB", (24, 40), (40 + 150 * i, 90, 200)).save(ref)
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    client = Client(server.url, server.key)
    before = len(client.list(limit=100).items)
    fill_small(app, "a dancer", num_frames=5, control_scale=0.5, fit=True)
    app.form.apply_model(str(vace))  # a folder the menu does not list: its file boxes open, the server checks them
    app.form.vars["control_video"].set(str(tmp_path / "missing.mp4"))
    app.generate()  # a file that is not there: named at once, nothing sent
    assert app.error.cget("text").startswith("⚠ Control video: ") and "is not a file" in app.error.cget("text")
    app.form.vars["control_video"].set(str(tmp_path / "pose.mp4"))
    app.form.references.insert("1.0", "\n".join(map(str, refs)))
    assert app.form.values()["fit"] is True and app.form.values()["control_scale"] == "0.5"
    app.generate_button.invoke()
    pump(root, lambda: (app.clip is not None and app.player.playing) or app.error.cget("text"), 180, "the VACE clip", app)
    assert not app.error.cget("text"), app.error.cget("text")
    job = client.get(app.job_id)
    assert (job.request["control_scale"], job.request["fit"]) == (0.5, True)
    assert [client.get_asset(a).sha256 for a in job.request["reference_images"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in refs]
    assert len(client.list(limit=100).items) == before + 1


def test_the_window_lays_out_at_900x650_and_the_clip_is_named_after_its_prompt(root, server, make_app):
    """At the smallest size the form scrolls in its column, lines wrap at the column's width (a long error is
    whole), the history scrolls, the progress bar is thick; a clip's file is named after its prompt; deleting
    names the prompt; a cancelled job leaves no preview behind."""
    app = make_app()
    root.geometry("900x650")
    pump(root, lambda: ready(app), 30, "the models", app)
    root.update()
    column = app.screen.master
    assert int(app.status.cget("wraplength")) == column.winfo_width() - 16
    app.show_error(F.FormError("Model unavailable: " + "a very long explanation of what went wrong " * 6))
    root.update()
    assert app.error.winfo_height() >= 2 * app.status.winfo_reqheight()  # wrapped onto lines, not cut off
    assert int(app.error.cget("wraplength")) <= root.winfo_width()
    canvas = app.form.master.master  # the form's scrolling column
    top, bottom = canvas.yview()
    assert bottom < 1.0  # taller than the window: it scrolls rather than being cut off
    assert app.history.table.cget("yscrollcommand")  # the history's scroll bar is wired
    app.tabs.select(app.history)  # the table is on top, where a click on its rows lands
    root.update()
    table = app.history.table
    assert root.winfo_containing(table.winfo_rootx() + 20, table.winfo_rooty() + 40) is table
    app.tabs.select(0)
    assert int(ttk.Style(root).lookup(str(app.progress.cget("style")), "thickness") or 0) >= 10
    root.update()
    assert app.progress.winfo_height() >= 12  # drawn that thick, not the theme's hairline
    right = root.winfo_rootx() + root.winfo_width()
    bottom = root.winfo_rooty() + root.winfo_height()
    for widget in app.steering:  # Generate ... Save as: on more lines in the narrow column, none off the window
        assert widget.winfo_ismapped() and widget.winfo_rootx() + widget.winfo_width() <= right, widget
        assert widget.winfo_rooty() + widget.winfo_height() <= bottom, widget

    fill_small(app, "a red ball at 900 by 650", seed_mode="fixed", seed="11")
    app.generate_button.invoke()
    pump(root, lambda: app.clip is not None and app.player.playing, 120, "the clip", app)
    assert app.clip.name.startswith("a-red-ball-at-900-by-650-seed11-") and app.clip.suffix == ".mp4"
    root.update()
    w, h = app.player.picture_size()  # the clip whole in the player, however narrow its column
    assert w <= app.screen.winfo_width() and h <= app.screen.winfo_height()
    asked = []
    app.confirm = lambda title, text: asked.append(text) or False
    app.delete(Client(server.url, server.key).get(app.job_id))
    assert asked and "“a red ball at 900 by 650”" in asked[0]

    fill_small(app, "a slow one", num_inference_steps=300)
    app.generate_button.invoke()
    pump(root, lambda: app.view is not None and app.view.step >= 2 and app.view.status == "running", 120,
         "the job to run", app)
    app.cancel()
    pump(root, lambda: app.view is not None and app.view.status == "cancelled", 60, "the cancel", app)
    pump(root, lambda: not app.player.photos, 10, "the preview cleared", app)
    assert not app.player.playing and not str(app.screen.cget("image"))


def test_play_sound_plays_the_clips_own_sound_with_the_frames_from_the_start(root, server, make_app, tmp_path, monkeypatch):
    """A clip with sound: Play sound extracts it to a WAV and hands that to the system's player, and the frames
    start again from the first; a silent clip leaves the button off; no player names the way out."""
    import numpy as np

    from t2v.desktop import tasks
    from t2v.export.audio import make_audio, read_audio
    from t2v.export.writers import write_video

    app = make_app()
    t = np.arange(12_000) / 24_000
    sound = make_audio(np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2), 24_000)
    frames = np.zeros((12, 32, 32, 3), dtype=np.uint8)
    clip = tmp_path / "with-sound.mp4"
    write_video(frames, clip, "mp4", 24, audio=sound)
    write_video(frames, tmp_path / "silent.mp4", "mp4", 24)
    assert tasks.has_sound(clip) and not tasks.has_sound(tmp_path / "silent.mp4")
    played = []
    monkeypatch.setattr(tasks.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "aplay" else None)
    monkeypatch.setattr(tasks.subprocess, "Popen", lambda cmd, **kw: played.append(cmd) or SimpleNamespace(poll=lambda: 0))
    monkeypatch.setattr(tasks.sys, "platform", "linux")
    from PIL import Image

    app.on_clip((app.job_id, clip, [Image.new("RGB", (32, 32))] * 12, 24.0))
    assert str(app.files.sound_button.cget("state")) == "normal"
    app.player.show(7)
    app.files.play_sound()
    assert played and played[0][:2] == ["aplay", "-q"] and app.player.current == 0
    wav = read_audio(played[0][-1])
    assert wav.sample_rate == 24_000 and wav.channels == 2 and abs(wav.length_s - 0.5) < 0.03  # AAC pads its last frame
    spectrum = np.abs(np.fft.rfft(wav.samples[0, :12_000]))
    assert round(np.argmax(spectrum) * 24_000 / 12_000) == 440  # the clip's own tone
    monkeypatch.setattr(tasks.shutil, "which", lambda name: None)
    app.files.play_sound()
    assert "No program plays sound here (paplay, pw-play, aplay, ffplay); Open file plays" in app.error.cget("text")
    app.on_clip((app.job_id, tmp_path / "silent.mp4", [Image.new("RGB", (32, 32))] * 12, 24.0))
    assert str(app.files.sound_button.cget("state")) == "disabled"
