"""The shared front-end logic on its own: plain data in, plain data out (no service, no toolkit)."""

from __future__ import annotations

import sys

import pytest

from t2v import frontend as F
from t2v.client.errors import InvalidRequest as ClientInvalid
from t2v.client.errors import Unauthorized
from t2v.contract import Job, Limits, Model, ModelRules
from t2v.errors import InvalidRequest, JobNotFound

LTX = Model(id="ltx", tasks=["t2v", "i2v"], rules=ModelRules(size_multiple=32, frame_step=8, modes=["video", "i2v"]))
SERVER = Limits(max_frames=100, max_steps=30, max_side=512)


def test_it_imports_no_ui_toolkit_web_or_database_code():
    import subprocess

    code = ("import sys, t2v.frontend; bad = [m for m in ('gradio', 'tkinter', 'fastapi', 'sqlalchemy', 'httpx', "
            "'torch', 'diffusers') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_limits_combine_the_server_caps_and_the_model_rules():
    lim = F.FormLimits.of(LTX, SERVER)
    assert (lim.max_frames, lim.max_steps, lim.max_side, lim.size_multiple, lim.frame_step, lim.image) == \
        (100, 30, 512, 32, 8, True)
    assert lim.frames(20) == 17 and lim.frames(22) == 25 and lim.frames(1000) == 97 and lim.frames(0) == 1
    assert lim.side(500) == 512 and lim.side(700) == 512 and lim.side(47) == 32 and lim.side(1) == 32
    assert lim.steps(99) == 30 and lim.steps(0) == 1
    plain = F.FormLimits.of(Model(id="m", tasks=["t2v"]), None)
    assert plain.image is False and plain.frames(13) == 13 and plain.side(61) == 64


def test_presets_stay_valid_for_the_model_and_the_server():
    defaults = {"num_frames": 161, "num_inference_steps": 50, "guidance_scale": 3, "fps": 24, "width": 704,
                "height": 480, "scheduler": "default"}
    lim = F.FormLimits.of(LTX, SERVER)
    quality = F.preset("Quality", defaults, lim)
    assert quality == {"num_frames": 97, "num_inference_steps": 30, "guidance_scale": 3.0, "fps": 24.0, "width": 512,
                       "height": 480, "scheduler": "default"}
    fast = F.preset("Fast preview", defaults, lim)
    assert fast["num_inference_steps"] == 8 and fast["num_frames"] == 9
    assert (fast["width"], fast["height"]) == (quality["width"], quality["height"])  # never below the model's size
    with pytest.raises(F.FormError, match="Fast preview, Quality"):
        F.preset("Ultra", defaults, lim)
    form = F.default_form("ltx", defaults, lim)
    assert form["seed_mode"] == "random" and form["seed"] is None and form["model"] == "ltx" and form["prompt"] == ""


def test_seed_modes():
    assert F.resolve_seed("random", "42") is None  # the server draws it and records it
    assert 0 <= F.resolve_seed("random", draw=True) < 2**32
    assert F.resolve_seed("fixed", "42") == 42
    assert F.resolve_seed("fixed", "") is None  # a blank box: random
    with pytest.raises(F.FormError, match="whole number") as e:
        F.resolve_seed("fixed", "4.5")
    assert e.value.field == "seed"
    with pytest.raises(F.FormError, match="nearest valid: 0"):
        F.resolve_seed("fixed", "-3")
    assert F.resolve_seed("reuse last", last_seed=7, previous=lambda: 9) == 7
    assert F.resolve_seed("reuse last", previous=lambda: 9) == 9
    with pytest.raises(F.FormError, match="no previous generation"):
        F.resolve_seed("reuse last")
    with pytest.raises(F.FormError, match="random, fixed, reuse last"):
        F.resolve_seed("lucky")


def test_request_fields_drop_blanks_and_always_ask_for_the_player_format():
    form = {"prompt": "a red ball", "negative_prompt": "", "model": " m ", "num_frames": "8", "num_inference_steps": 4,
            "guidance_scale": "7.5", "fps": "", "width": 64, "height": 64, "scheduler": "", "formats": ["mp4"]}
    fields = F.request_fields(form, seed=5)
    assert fields == {"prompt": "a red ball", "model": "m", "num_frames": 8, "num_inference_steps": 4,
                      "guidance_scale": 7.5, "width": 64, "height": 64, "seed": 5, "formats": ["mp4", "webm"]}
    with pytest.raises(F.FormError, match="Prompt") as e:
        F.request_fields({**form, "prompt": "  "}, None)
    assert e.value.field == "prompt"
    with pytest.raises(F.FormError, match="Frames: 'many' is not a number"):
        F.request_fields({**form, "num_frames": "many"}, None)


def test_post_processing_options_make_a_post_block_only_when_one_is_on():
    form = {**F.default_form("m", {}), "prompt": "a red ball", "formats": ["mp4"]}
    assert (form["interpolate"], form["upscale"], form["upscaler"], form["deflicker"]) == ("Off", "Off", "lanczos", False)
    assert "post" not in F.request_fields(form, seed=5)  # all off: no block, the request is as before
    assert "post" not in F.request_fields({**form, "upscaler": "realesrgan"}, seed=5)  # an upscaler alone does nothing
    fields = F.request_fields({**form, "interpolate": "2x", "upscale": "4x", "upscaler": "realesrgan-anime",
                               "deflicker": True}, seed=5)
    assert fields["post"] == {"deflicker": True, "interpolate": 2, "upscale": 4, "upscaler": "realesrgan-anime"}
    assert F.request_fields({**form, "interpolate": "3x"}, None)["post"] == {"interpolate": 3}
    assert F.request_fields({**form, "upscale": "2x"}, None)["post"] == {"upscale": 2, "upscaler": "lanczos"}
    for changes, field, text in (({"interpolate": "many"}, "interpolate", "Interpolation: 'many' is not a factor"),
                                 ({"interpolate": "9x"}, "interpolate", "Interpolation: "),
                                 ({"upscale": "3x"}, "upscale", "Upscale: must be 2 or 4, got 3; nearest valid: 2")):
        with pytest.raises(F.FormError, match=text) as e:
            F.request_fields({**form, **changes}, None)
        assert e.value.field == field
    # the server's answer about a post field names the form's field
    e = F.readable(ClientInvalid("HTTP 422: post.interpolate: 4x makes 29 frames, over the limit of 16",
                                 field="post.interpolate"))
    assert str(e) == "Interpolation: 4x makes 29 frames, over the limit of 16" and e.field == "interpolate"


def test_remix_restores_the_post_processing_options():
    base = {"prompt": "p", "model": "m", "fps": 8, "seed": 3, "formats": ["mp4", "webm"]}
    assert {k: F.remix_form(base)[k] for k in F.POST_KEYS} == F.POST_DEFAULTS
    assert {k: F.remix_form({**base, "post": None})[k] for k in F.POST_KEYS} == F.POST_DEFAULTS
    post = {"deflicker": True, "interpolate": 2, "target_fps": None, "interpolation": "auto", "upscale": 4,
            "upscaler": "realesrgan"}
    form = F.remix_form({**base, "post": post})
    assert (form["interpolate"], form["upscale"], form["upscaler"], form["deflicker"]) == ("2x", "4x", "realesrgan", True)
    assert set(form) == set(F.FORM_KEYS)
    assert F.request_fields(form, 3)["post"] == {"deflicker": True, "interpolate": 2, "upscale": 4, "upscaler": "realesrgan"}
    assert F.remix_form({**base, "post": {"target_fps": 24}})["interpolate"] == "3x"  # the factor it made


def test_remix_keeps_the_interpolation_method():
    base = {"prompt": "p", "model": "m", "fps": 8, "seed": 3, "formats": ["mp4"]}
    assert F.default_form("m", {})["interpolation"] == "auto" and "interpolation" in F.FORM_KEYS
    for method in ("minterpolate", "blend", "flow"):
        form = F.remix_form({**base, "post": {"interpolate": 2, "target_fps": None, "interpolation": method}})
        assert (form["interpolate"], form["interpolation"]) == ("2x", method)
        assert F.request_fields(form, 3)["post"] == {"interpolate": 2, "interpolation": method}  # remade the same way
    form = F.remix_form({**base, "post": {"target_fps": 24, "interpolation": "blend"}})
    assert F.request_fields(form, 3)["post"] == {"interpolate": 3, "interpolation": "blend"}
    auto = F.remix_form({**base, "post": {"interpolate": 2, "interpolation": "auto"}})
    assert F.request_fields(auto, 3)["post"] == {"interpolate": 2}  # the default: the request as before
    off = {**F.default_form("m", {}), "prompt": "p", "interpolation": "blend"}
    assert "post" not in F.request_fields(off, 3)  # a method alone does nothing
    with pytest.raises(F.FormError, match="Interpolation method: unknown interpolation method 'warp'") as e:
        F.request_fields({**off, "interpolate": "2x", "interpolation": "warp"}, None)
    assert e.value.field == "interpolation"


def test_remix_fixes_the_resolved_seed_and_knows_its_tab():
    video = {"prompt": "p", "model": "m", "num_frames": 8, "num_inference_steps": 4, "guidance_scale": 5.0, "fps": 8,
             "width": 64, "height": 64, "scheduler": "ddim", "seed": 1234, "formats": ["mp4", "webm", "png"]}
    form = F.remix_form(video)
    assert form["seed_mode"] == "fixed" and form["seed"] == 1234 and form["formats"] == ["mp4", "webm", "png"]
    assert F.request_fields(form, F.resolve_seed(form["seed_mode"], form["seed"]))["seed"] == 1234
    assert F.remix_target(video) == "video"
    sequence = {"mode": "sequence", "keyframes": [[0, "spring"], [8, "winter"]], "seed": 3}
    assert F.remix_target(sequence) == "sequence"
    with pytest.raises(F.FormError, match="Sequence tab"):
        F.remix_form(sequence)


def test_errors_become_one_sentence_naming_the_field():
    e = F.readable(InvalidRequest("num_frames: 20 is not 8k+1; nearest valid: 17", field="num_frames"))
    assert str(e) == "Frames: 20 is not 8k+1; nearest valid: 17" and e.field == "num_frames"
    e = F.readable(ClientInvalid("HTTP 422: width: 70 is not a multiple of 32", field="width"))
    assert str(e) == "Width: 70 is not a multiple of 32" and e.field == "width"
    assert "another API key" in str(F.readable(JobNotFound("x")))
    assert F.readable(Unauthorized("HTTP 401: bad key", status=401)).field == "api_key"


def job(id_, status, prompt="a red ball", **extra) -> Job:
    return Job.model_validate({"id": id_, "status": status, "request": {"prompt": prompt, "seed": 1, "model": "m",
                                                                      "num_frames": 8, "width": 64, "height": 64,
                                                                      "fps": 8, "num_inference_steps": 4,
                                                                      "scheduler": "ddim", "guidance_scale": 7.5},
                               **extra})


def test_views_of_each_state():
    v = F.view_of(job("a", "queued", queue_position=3))
    assert v.message == "Queued: position 3 in the queue." and F.progress_label(v) == "queued, position 3"
    v = F.view_of(job("a", "running", progress={"stage": "denoise", "step": 2, "total": 4, "eta_s": 3.0}))
    assert v.fraction == 0.5 and v.message == "Denoising: step 2 of 4, about 3.0 s left…"
    assert F.progress_label(v) == "step 2 / 4 · ETA 3.0 s"
    v = F.view_of(job("a", "running", progress={"stage": "decode", "step": 4, "total": 4, "eta_s": 2.0}))
    assert v.message == "Decoding frames, about 2.0 s left…"
    assert F.progress_label(v) == "step 4 / 4 · ETA 2.0 s · decoding frames"
    done = job("a", "succeeded", progress={"stage": "done", "step": 4, "total": 4},
               result={"files": [{"format": "mp4", "url": "/v1/videos/a/content?format=mp4"},
                                 {"format": "png", "url": None}],
                       "metadata": {"seed": 77, "timings": {"total_s": 12.5, "denoise_s": 10.0}}})
    v = F.view_of(done)
    assert v.fraction == 1.0 and v.seed == 77 and v.message == "Done in 12 s. Seed 77."
    assert v.downloads == {"mp4": "/v1/videos/a/content?format=mp4"}
    parts = dict(v.summary_parts())
    assert parts["Seed"].startswith("77 · 8 frames 64×64 @ 8 fps · 4 steps ddim") and parts["Prompt"] == "a red ball"
    assert parts["Timings"] == "denoise 10 s · total 12 s"
    post = {"steps": [{"name": "deflicker", "seconds": 0.1},
                      {"name": "interpolate", "factor": 2, "method": "flow", "seconds": 0.2},
                      {"name": "upscale", "factor": 2, "upscaler": "/models/4x-Ultra.pth", "seconds": 0.3}],
            "fps": 16.0, "num_frames": 15, "width": 128, "height": 128, "frames_sha256": "0" * 64}
    v = F.view_of(job("a", "succeeded", result={"files": [], "metadata": {
        "seed": 77, "postprocess": post, "timings": {"post_s": 0.6, "total_s": 12.5}}}))
    assert v.post == post
    parts = dict(v.summary_parts())
    assert parts["Post-processing"] == ("deflicker · interpolate 2x (flow) · upscale 2x (4x-Ultra.pth) → "
                                        "15 frames 128×128 @ 16 fps")
    assert parts["Timings"] == "post 0.6 s · total 12 s" and list(parts)[-1] == "Prompt"
    assert "Post-processing" not in dict(F.view_of(done).summary_parts())
    long = {"frames": 20, "segments": [{"index": i} for i in range(5)]}  # a longer video: the frames made
    v = F.view_of(job("a", "succeeded", result={"files": [], "metadata": {"seed": 77, "long": long}}))
    assert dict(v.summary_parts())["Seed"].startswith("77 · 20 frames in 5 segments 64×64 @ 8 fps")
    v = F.view_of(job("a", "running", progress={"stage": "post", "step": 3, "total": 7}))
    assert v.message == "Post-processing: frame 3 of 7…" and F.progress_label(v) == "post-processing 3 / 7"
    v = F.view_of(job("a", "failed", error="out of memory"))
    assert v.message == "Job failed: out of memory" and v.summary_parts() == []
    assert F.format_seconds(125) == "2 min 5 s" and F.format_seconds(None) == "-"


def test_history_filters_by_status_and_words_newest_first_once_each():
    jobs = [job("01a", "succeeded", "A red ball bouncing"), job("01c", "failed", "a blue square", error="boom"),
            job("01b", "running", "a red ball"), job("01d", "cancelled", "green triangle"),
            job("01a", "succeeded", "A red ball bouncing")]
    assert [j.id for j in F.filter_jobs(jobs)] == ["01d", "01c", "01a"]
    assert [j.id for j in F.filter_jobs(jobs, "RED ball")] == ["01a"]
    assert [j.id for j in F.filter_jobs(jobs, "a", statuses=["running", "failed"])] == ["01c", "01b"]
    assert [j.id for j in F.filter_jobs(jobs, limit=1)] == ["01d"]
    assert F.caption("failed", {"prompt": "x", "seed": 3}, "boom") == "⚠ failed: boom · x · seed 3"
    assert F.caption("succeeded", {"keyframes": [[0, "spring"], [8, "winter"]], "seed": 3}, None) == \
        "spring | winter · seed 3"


def test_longer_video_fields_go_into_the_request_and_come_back_with_remix():
    form = {**F.default_form("m", {}), "prompt": "p"}
    assert not set(F.LONG_KEYS) & set(F.request_fields(form, 3))  # blank: one clip
    assert not set(F.LONG_KEYS) & set(F.request_fields({**form, "seconds": 0}, 3))  # 0 too (a page's number box)
    long = {**form, "seconds": "2.5", "prompt_schedule": "0: a ball\n\n 10: a cube \n", "overlap": "2",
            "continue_strength": "0.6"}
    fields = F.request_fields(long, 3)
    assert {k: fields[k] for k in F.LONG_KEYS} == {"seconds": 2.5, "prompt_schedule": ["0: a ball", "10: a cube"],
                                                    "overlap": 2, "continue_strength": 0.6}
    # a schedule alone is a longer video too (it runs a segment past its last entry)
    assert F.request_fields({**form, "prompt_schedule": "0: a\n8: b"}, 3)["prompt_schedule"] == ["0: a", "8: b"]
    for changes, field, text in (
            ({"seconds": 2, "prompt_schedule": "0: a\nten: b"}, "prompt_schedule",
             "Prompt schedule: entry 2: 'ten: b' is not 'INDEX: prompt'"),
            ({"seconds": 2, "prompt_schedule": "0: a\n0: b"}, "prompt_schedule", "Prompt schedule: entry 2: frame 0 appears twice"),
            ({"seconds": "x"}, "seconds", "Seconds: 'x' is not a number"),
            ({"seconds": 601}, "seconds", "Seconds: "),
            ({"overlap": 2}, "overlap", "Overlap: only longer videos take it"),
            ({"seconds": 2, "overlap": 0}, "overlap", "Overlap: "),
            ({"seconds": 2, "continue_strength": 1.5}, "continue_strength", "Continue strength: ")):
        with pytest.raises(F.FormError) as e:
            F.request_fields({**form, **changes}, 3)
        assert e.value.field == field and str(e.value).startswith(text), (changes, str(e.value))
    # a record's schedule (pairs) comes back as the box's lines, and makes the same request again
    record = {"prompt": "p", "model": "m", "fps": 8, "seed": 3, "formats": ["mp4"], "seconds": 2.5,
              "prompt_schedule": [[0, "a ball"], [10, "a cube"]], "overlap": 2, "continue_strength": None}
    again = F.remix_form(record)
    assert set(again) == set(F.FORM_KEYS) and again["prompt_schedule"] == "0: a ball\n10: a cube"
    assert {k: F.request_fields(again, 3).get(k) for k in F.LONG_KEYS} == {
        "seconds": 2.5, "prompt_schedule": ["0: a ball", "10: a cube"], "overlap": 2, "continue_strength": None}
    assert {k: F.remix_form({**record, "seconds": None, "prompt_schedule": None, "overlap": None})[k]
            for k in F.LONG_KEYS} == F.LONG_DEFAULTS


def test_nan_and_infinity_in_number_fields_name_the_field():
    from t2v.frontend.forms import FormError, number, resolve_seed

    for text in ("nan", "inf", "-inf", "1e400"):
        with pytest.raises(FormError, match=r"is not a finite number") as e:
            number({"num_frames": text}, "num_frames")
        assert e.value.field == "num_frames"
        with pytest.raises(FormError) as e:
            resolve_seed("fixed", text)
        assert e.value.field == "seed"


def test_the_summary_shows_every_stage_of_the_record_in_order_and_the_work_beside():
    """Whatever stages a run's record has (plan, dry run, load, ... encode), the page shows each, in the run's
    order, then the total they add up to, then what ran beside them (not part of the sum)."""
    timings = {"plan_s": 0.25, "dry_run_s": 2.0, "load_s": 1.5, "encode_prompt_s": 0.5, "denoise_s": 10.0,
               "decode_s": 1.0, "record_s": 0.25, "encode_s": 0.5, "total_s": 16.0, "hash_beside_s": 0.75}
    v = F.view_of(job("a", "succeeded", result={"files": [], "metadata": {"seed": 1, "timings": timings}}))
    assert dict(v.summary_parts())["Timings"] == (
        "plan 0.2 s · dry run 2.0 s · load 1.5 s · encode prompt 0.5 s · denoise 10 s · decode 1.0 s · "
        "record 0.2 s · encode 0.5 s · total 16 s · (hash 0.8 s beside)")


def test_the_cli_summary_says_where_the_time_went(capsys):
    from t2v.cli.common import print_record

    print_record({"seed": 1, "num_frames": 8, "width": 64, "height": 64, "fps": 8, "device": "cpu", "dtype": "fp32",
                  "timings": {"plan_s": 0.2, "load_s": 1.0, "denoise_s": 3.0, "encode_s": 0.01, "total_s": 4.21,
                              "hash_beside_s": 0.4}})
    said = capsys.readouterr().out
    assert "4.2s total" in said and "time: plan 0.2s + load 1.0s + denoise 3.0s (hash 0.4s beside)" in said, said
