"""The shared front-end pieces both apps use: the model picker's labels and groups (from GET /v1/models), an
uploaded clip's uses, the differences between two jobs, and the steadied ETA."""

import pytest

from t2v import frontend as F
from t2v.contract import ModelList


def model_list(downloads=False) -> ModelList:
    return ModelList.model_validate({"default": "t2v-shapes", "downloads": downloads, "items": [
        {"id": "sd", "tasks": ["image"], "present": False, "download_gb": 5.2, "vram_gb": 4, "license": "CreativeML"},
        {"id": "i2v", "tasks": ["i2v"], "present": True, "download_gb": 60, "vram_gb": 40, "license": "Apache-2.0"},
        {"id": "wan", "tasks": ["t2v"], "present": False, "download_gb": 28.9, "vram_gb": 8.2,
         "license": "Apache-2.0 (commercial use)"},
        {"id": "t2v-shapes", "tasks": ["t2v"], "present": True, "bundled": True},
        {"id": "old-server", "tasks": ["t2v"]},  # a server too old to say whether it is here
    ]})


def test_the_menu_puts_the_servers_model_first_then_groups_by_task_and_says_what_is_here():
    menu = F.model_menu(model_list())
    assert menu[0] == ("t2v-shapes · this server's model · ready", "t2v-shapes")
    assert [v for _, v in menu[1:]] == ["old-server", "wan", "i2v", "sd"]  # video (here first), i2v, image
    labels = dict((v, label) for label, v in menu)
    assert labels["wan"] == "wan · video · not downloaded, 28.9 GB · ~8.2 GB VRAM · Apache-2.0"
    assert labels["sd"].startswith("sd · image · not downloaded, 5.2 GB")
    assert labels["i2v"].startswith("i2v · image-to-video · ready")
    assert "downloads at first use, 28.9 GB" in dict((v, x) for x, v in F.model_menu(model_list(True)))["wan"]


def test_a_model_not_here_gets_one_sentence_on_what_generate_does():
    models = model_list()
    wan = F.catalog.find(models, "wan")
    assert F.model_note(wan) == ("wan is not downloaded on this server (28.9 GB): its admin can fetch it with "
                                 "`t2v models pull wan`.")
    assert F.model_note(wan, downloads=True) == "wan is not on this server yet: the first Generate downloads it (28.9 GB)."
    assert F.model_note(F.catalog.find(models, "t2v-shapes")) == "" and F.model_note(None) == ""


def test_an_uploaded_clip_becomes_the_request_its_use_says():
    fields = {"prompt": "a cat", "model": "m", "formats": ["mp4", "webm", "png"], "post": {"upscale": 2}, "seconds": 2.0}
    assert F.clip_uses(("image", "video", "extend")) == ("video-to-video", "extend", "post-process only")
    assert F.clip_uses(()) == ("post-process only",)
    v2v = F.with_clip({k: v for k, v in fields.items() if k != "seconds"}, F.V2V, "ast_1", "0.4", ("video", "extend"))
    assert v2v["video"] == "ast_1" and v2v["strength"] == 0.4 and "extend" not in v2v
    assert "strength" not in F.with_clip({"prompt": "a"}, F.V2V, "ast_1", "")  # blank: the default
    assert F.with_clip(fields, F.EXTEND, "ast_2")["extend"] == "ast_2"
    post = F.with_clip(fields, F.POST_ONLY, "ast_3")
    assert post == {"mode": "post", "asset": "ast_3", "post": {"upscale": 2}, "formats": ["mp4", "webm"]}
    for use, fields_, inputs, words in (
            (F.V2V, {"prompt": "a", "model": "sd"}, (), "sd cannot video-to-video a clip; it can: post-process only"),
            (F.EXTEND, {"prompt": "a"}, None, "Seconds: give the seconds to add"),
            (F.POST_ONLY, {"prompt": "a"}, None, "Post-processing: choose deflicker, interpolation or upscaling"),
            ("sideways", {"prompt": "a"}, None, "Use it for: 'sideways' is not a use; choose one of video-to-video")):
        with pytest.raises(F.FormError, match=words.replace("(", r"\(")):
            F.with_clip(fields_, use, "ast_1", None, inputs)
    with pytest.raises(F.FormError, match="Strength: .*nearest valid: 1.0"):
        F.with_clip({"prompt": "a"}, F.V2V, "ast_1", "1.5")
    assert F.clip_of({"video": "ast_1", "strength": 0.3}) == ("video", F.V2V)
    assert F.clip_of({"extend": "ast_2"}) == ("extend", F.EXTEND) and F.clip_of({"prompt": "x"}) == (None, None)


def test_two_jobs_differences_are_listed_by_label():
    a = {"mode": "video", "prompt": "a cat", "seed": 1, "num_inference_steps": 25, "post": None, "loras": []}
    b = {"mode": "video", "prompt": "a cat", "seed": 2, "num_inference_steps": 25, "post": {"upscale": 2},
         "guidance_scale": 7.5}
    rows = F.differences(a, b)
    assert rows == [("Seed", "1", "2"), ("Post-processing", "default", '{"upscale": 2}'), ("Guidance", "default", "7.5")]
    assert F.differences(a, dict(a)) == [] and F.differences_text([]).startswith("Same parameters")
    assert F.differences_text(rows[:1]) == "Seed: A 1 | B 2"


def test_the_eta_counts_down_and_small_rises_do_not_send_it_back_up():
    now = [0.0]
    eta = F.SteadyEta(clock=lambda: now[0])
    assert eta(14.0) == 14.0
    now[0] = 2.0
    assert eta(13.0) == 12.0  # a little above the count (12): the count stands
    now[0] = 3.0
    assert eta(10.0) == 10.0  # a fall shows at once
    now[0] = 4.0
    assert eta(22.0) == 22.0  # a big rise is news: shown
    assert eta(None) is None
