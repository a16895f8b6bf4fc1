"""The desktop form's model picker (labels from the catalogue, a note on a model that is not here) and the user's own
video (video-to-video, post-processing only, the uses a model refuses), under Xvfb against a real ``t2v serve``."""

from __future__ import annotations

import hashlib
import json
import tkinter.font as tkfont
from pathlib import Path
from tkinter import ttk

import numpy as np
import pytest

from t2v import frontend as F
from t2v.client import Client
from tests.desktop.conftest import SMALL, decoded, fill_small, pump, ready

WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
VACE = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
FLF = "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"
LTX = "Lightricks/LTX-Video"
ANIMATE = "Wan-AI/Wan2.2-Animate-14B-Diffusers"
V2V, EXTEND, POST_ONLY = F.CLIP_USES
CLIP_FRAMES, CLIP_SIZE = 6, (48, 32)  # the user's clip: 6 frames, 48x32


@pytest.fixture
def own_clip(tmp_path) -> Path:
    """A clip of the user's own: 6 frames of 48x32 at 8 fps, moving stripes."""
    from t2v.export.writers import write_video

    w, h = CLIP_SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(xx * 7 + i * 30) % 256, yy * 5 % 256, (xx + 40 * i) % 256], -1)
                       for i in range(CLIP_FRAMES)]).astype(np.uint8)
    path = tmp_path / "mine.mp4"
    write_video(frames, path, "mp4", 8, crf=4)
    return path


def choose(app, label: str) -> None:
    """Pick ``label`` in the model combobox as a person does (the selection event follows)."""
    app.form.model.set(label)
    app.form.model.event_generate("<<ComboboxSelected>>")
    app.root.update()


def label_of(app, model_id: str) -> str:
    return next(label for label in app.form.model.cget("values") if app.form.picker.ids[label] == model_id)


def state(widget) -> str:
    return str(widget.cget("state"))


def test_the_model_picker_says_what_each_model_is_and_whether_it_is_here(root, server, make_app, tmp_path):
    app = make_app()
    app.report_path = str(tmp_path / "window.json")
    pump(root, lambda: ready(app), 30, "the models", app)
    catalogue = {m.id: m for m in Client(server.url, server.key).models().items}
    labels = list(app.form.model.cget("values"))
    assert len(labels) == len(catalogue) and labels[0] == f"{server.name} · this server's model · ready"
    # the app opens on the server's own model: its label shown, its id sent, no note
    assert app.form.model.get() == labels[0] and app.form.values()["model"] == server.name
    assert app.form.picker.note.cget("text") == "" and not app.form.picker.note.winfo_ismapped()
    report = json.loads(Path(app.report_path).read_text())
    assert (report["model"], report["model_shown"], report["model_note"]) == (server.name, labels[0], "")
    assert report["model_labels"] == labels

    shapes = label_of(app, "t2v-shapes")
    assert shapes.startswith("t2v-shapes · video · ready · ")
    wan = catalogue[WAN]
    assert label_of(app, WAN) == (f"{WAN} · video · not downloaded, {wan.download_gb:g} GB · ~{wan.vram_gb:g} GB VRAM "
                                  "· Apache-2.0")
    # grouped by what each model makes: video, then image-to-video, then image, the ready ones first in each
    groups = [label.split(" · ")[1] for label in labels[1:]]
    order = [name for _, name in F.TASK_GROUPS]
    assert [order.index(g) for g in groups] == sorted(order.index(g) for g in groups) and set(groups) == set(order)
    assert labels.index(shapes) < min(i for i, label in enumerate(labels) if "not downloaded" in label)

    # a model that is not here: its id goes into the request, the note says what Generate would do, whole
    choose(app, label_of(app, WAN))
    note = app.form.picker.note
    assert app.form.values()["model"] == WAN and app.form.model.get() == label_of(app, WAN)
    assert note.cget("text") == (f"{WAN} is not downloaded on this server ({wan.download_gb:g} GB): its admin can "
                                 f"fetch it with `t2v models pull {WAN}`.")
    root.update()
    assert note.winfo_ismapped() and note.winfo_width() >= note.winfo_reqwidth()
    assert note.winfo_height() >= note.winfo_reqheight() and note.winfo_reqwidth() <= int(note.cget("wraplength"))
    assert app.form.vars["num_frames"].get() == str(wan.defaults["num_frames"])  # its defaults came with it
    app.report()
    report = json.loads(Path(app.report_path).read_text())
    assert (report["model"], report["model_note"]) == (WAN, note.cget("text"))

    # the list drops down as wide as its longest label
    app.form.picker.widen()
    extra = ttk.Style(root).lookup("t2v.Models.TCombobox", "postoffset")
    widest = max(tkfont.nametofont("TkDefaultFont").measure(label) for label in labels)
    assert app.form.model.winfo_width() + int(str(extra).split()[2]) >= widest

    # a remix of a job made on the server's model puts its id back, and its label
    job = Client(server.url, server.key).submit("a ball", **SMALL)
    app.remix(Client(server.url, server.key).wait(job.id, timeout=120))
    assert app.form.values()["model"] == server.name and app.form.model.get() == labels[0]
    assert note.cget("text") == "" and not note.winfo_ismapped()


def test_each_file_box_and_clip_use_follows_the_models_inputs(root, server, make_app):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    form = app.form

    def shown() -> dict:
        return {key: state(form.pickers[key][0]) for key in ("image", "last_image", "control_video", "mask_video",
                                                              "reference_images")}

    assert set(shown().values()) == {"disabled"}  # the tiny ModelScope model takes no file
    assert tuple(form.clip.use_box.cget("values")) == (V2V, EXTEND, POST_ONLY)
    choose(app, label_of(app, LTX))
    assert shown() == {"image": "normal", "last_image": "disabled", "control_video": "disabled",
                       "mask_video": "disabled", "reference_images": "disabled"}
    choose(app, label_of(app, FLF))
    assert shown()["image"] == shown()["last_image"] == "normal"
    form.vars["last_image"].set("/somewhere/last.png")
    choose(app, label_of(app, VACE))
    assert shown() == {"image": "disabled", "last_image": "disabled", "control_video": "normal",
                       "mask_video": "normal", "reference_images": "normal"}
    assert form.vars["last_image"].get() == ""  # a box the model does not take sends nothing
    form.clip.use.set(EXTEND)
    choose(app, label_of(app, VACE))
    assert tuple(form.clip.use_box.cget("values")) == (POST_ONLY,) and form.clip.use.get() == POST_ONLY
    assert state(form.clip.strength_entry) == "disabled"  # only video-to-video has a strength
    choose(app, label_of(app, ANIMATE))  # Wan-Animate: the character, the pose and face clips, replace mode's pair
    assert {k: state(form.pickers[k][0]) for k in ("image", "control_video", "face_video", "mask_video",
                                                   "background_video", "reference_images")} == {
        "image": "normal", "control_video": "normal", "face_video": "normal", "mask_video": "normal",
        "background_video": "normal", "reference_images": "disabled"}
    form.clip.use.set(V2V)
    assert state(form.clip.strength_entry) == "normal" and form.clip.hint.cget("text") == F.CLIP_HINTS[V2V]


def test_video_to_video_uploads_your_clip_and_remix_puts_it_back(root, server, make_app, own_clip):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    client = Client(server.url, server.key)
    fill_small(app, "a ball through my clip", seed_mode="fixed", seed="5")
    app.form.clip.path.set(str(own_clip))
    app.form.clip.use.set(V2V)
    app.form.clip.strength.set("0.4")
    app.generate_button.invoke()
    pump(root, lambda: (app.clip is not None and app.player.playing) or app.error.cget("text"), 180, "the video-to-video clip", app)
    assert not app.error.cget("text"), app.error.cget("text")
    job = client.get(app.job_id)
    asset = client.get_asset(job.request["video"])
    assert asset.sha256 == hashlib.sha256(own_clip.read_bytes()).hexdigest() and asset.kind == "video"
    assert (job.request["strength"], job.request["extend"], job.request["prompt"]) == (0.4, None, "a ball through my clip")
    assert decoded(app.clip).shape == (SMALL["num_frames"], SMALL["height"], SMALL["width"], 3)
    assert len(app.player.photos) == SMALL["num_frames"]

    app.form.clip.clear()
    app.form.clip.use.set(POST_ONLY)
    app.remix(job)  # this window uploaded the clip: its file comes back with its use and strength
    clip = app.form.clip
    assert (clip.path.get(), clip.use.get(), clip.strength.get()) == (str(own_clip), V2V, "0.4")
    app.uploads.clear()  # another window: the server keeps the clip, but the client cannot fetch it back
    app.remix(job)
    assert (clip.path.get(), clip.use.get(), clip.strength.get()) == ("", V2V, "0.4")
    assert "choose your video again" in app.status.cget("text")


def test_post_processing_only_needs_no_prompt_and_refused_uses_are_named(root, server, make_app, own_clip, tmp_path):
    app = make_app()
    pump(root, lambda: ready(app), 30, "the models", app)
    client = Client(server.url, server.key)
    before = len(client.list(limit=100).items)
    form, clip = app.form, app.form.clip

    def refused(text: str) -> None:
        app.generate()
        pump(root, lambda: app.error.cget("text") and str(app.generate_button.cget("state")) == "normal", 30,
             "the refusal", app)
        assert app.error.cget("text").startswith("⚠ " + text), app.error.cget("text")
        app.clear_error()

    clip.path.set(str(tmp_path / "gone.mp4"))
    refused(f"Your video: {tmp_path / 'gone.mp4'} is not a file")
    clip.path.set(str(own_clip))
    clip.use.set(POST_ONLY)
    refused("Post-processing: choose deflicker, interpolation or upscaling")  # nothing to do to the clip
    fill_small(app, "a ball")
    clip.use.set(V2V)
    clip.strength.set("1.5")
    refused("Strength: ")
    clip.use.set(EXTEND)
    refused("Seconds: give the seconds to add to your video")
    clip.use.set(V2V)
    clip.strength.set("")
    form.apply_model(VACE)  # a model that takes no clip (and is not here): named before anything is uploaded
    clip.use.set(V2V)
    refused(f"Use it for: {VACE} cannot video-to-video a clip; it can: post-process only")
    form.apply_model(server.name)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    clip.path.set(str(notes))
    refused("Your video: notes.mp4: ")  # the server's reason, as the form's field
    assert len(client.list(limit=100).items) == before

    # post-processing only: the clip interpolated 2x, no prompt, no model, a POST /v1/post job
    form.fill({"prompt": "", "interpolate": "2x", "formats": ["mp4"]})
    clip.path.set(str(own_clip))
    clip.use.set(POST_ONLY)
    app.generate_button.invoke()
    pump(root, lambda: (app.clip is not None and app.player.playing) or app.error.cget("text"), 120, "the post-processed clip", app)
    assert not app.error.cget("text"), app.error.cget("text")
    job = client.get(app.job_id)
    assert job.request["mode"] == "post" and job.request["post"]["interpolate"] == 2
    assert client.get_asset(job.request["asset"]).sha256 == hashlib.sha256(own_clip.read_bytes()).hexdigest()
    frames = decoded(app.clip)
    assert frames.shape == (2 * CLIP_FRAMES - 1, CLIP_SIZE[1], CLIP_SIZE[0], 3) and len(app.player.photos) == len(frames)

    form.fill(F.POST_DEFAULTS)
    clip.clear()
    app.remix(job)
    assert (clip.path.get(), clip.use.get(), form.vars["interpolate"].get()) == (str(own_clip), POST_ONLY, "2x")
