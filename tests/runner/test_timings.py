"""A record's ``timings``: the runner's emitter times each stage once (from its start to the next stage's), so the
stages on the critical path add up to ``total_s``; work beside them has a key of its own; a dry run is a stage."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from t2v.progress import ProgressEmitter, critical_path, stage
from t2v.requests import GenerationRequest, ImageRequest
from t2v.runner import image as image_run
from t2v.runner.video import generate_video
from t2v.settings import get_settings


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def adds_up(timings: dict) -> None:
    assert critical_path(timings) == pytest.approx(timings["total_s"], rel=0.01), timings


def test_each_stage_lasts_until_the_next_starts_and_work_beside_them_is_kept_apart():
    clock = Clock()
    emit = ProgressEmitter(None, 0.0, clock=clock)  # nobody listens: the stopwatch runs all the same
    emit.activate()
    clock.t = 1.0
    emit("load", message="loading", timed=False)  # reported, but planning goes on
    clock.t = 1.5
    emit.mark("imports")
    clock.t = 3.0
    emit.mark("plan")
    clock.t = 3.5
    with stage("dry_run"):  # from code handed no emitter: the run in progress in this thread
        clock.t = 5.0
    clock.t = 5.5
    emit.mark("load")
    clock.t = 6.0
    emit("encode_prompt")
    clock.t = 6.5
    for step in range(3):
        emit("denoise", step, 3)
        clock.t += 1.0
    emit("decode")
    emit.beside("hash", 2.0)  # ran in a thread beside the decode
    clock.t = 10.0
    emit("export")
    clock.t = 10.25
    timings = emit.timings()
    assert timings == {"load_s": 0.5, "plan_s": 2.5, "imports_s": 1.5, "dry_run_s": 1.5, "encode_prompt_s": 0.5,
                       "denoise_s": 3.0, "decode_s": 0.5, "encode_s": 0.25, "total_s": 10.25, "hash_beside_s": 2.0}
    adds_up(timings)
    emit("done")
    clock.t = 20.0
    assert emit.timings()["total_s"] == 20.0 and emit.timings()["encode_s"] == 0.25  # "done" is no stage


def test_a_cached_load_is_planning_and_laps_split_a_run_between_its_outputs():
    clock = Clock()
    emit = ProgressEmitter(None, 0.0, clock=clock)
    clock.t = 1.0
    emit.mark("load")
    clock.t = 1.25
    emit.relabel("plan")  # the model came from the cache
    emit("denoise", 0, 2)
    clock.t = 3.0
    first = emit.lap()
    assert first == {"load_s": 0.0, "plan_s": 1.25, "denoise_s": 1.75, "total_s": 3.0}
    clock.t = 4.0
    emit("export")
    clock.t = 4.5
    second = emit.lap()
    assert second == {"load_s": 0.0, "plan_s": 0.0, "denoise_s": 1.0, "encode_s": 0.5, "total_s": 1.5}
    adds_up(first)
    adds_up(second)


@pytest.mark.parametrize("post", [None, {"deflicker": True}])
def test_a_video_run_records_where_every_second_went(tiny_model, tmp_path, post):
    request = GenerationRequest.create(prompt="a red circle moving right", model=str(tiny_model), num_frames=4,
                                       width=32, height=32, num_inference_steps=2, seed=1, formats=["mp4"], post=post)
    result = generate_video(request, output=tmp_path / "clip.mp4", settings=get_settings())
    timings = json.loads((tmp_path / "clip.json").read_text())["timings"]
    assert timings == result.record["timings"]
    stages = {"plan_s", "load_s", "encode_prompt_s", "denoise_s", "decode_s", "encode_s"} | ({"post_s"} if post else set())
    assert stages <= set(timings) and all(timings[k] >= 0 for k in timings)
    assert timings["denoise_s"] > 0 and timings["decode_s"] > 0 and timings["encode_s"] > 0
    adds_up(timings)


def test_an_image_run_records_each_images_share(tiny_sd_model, tmp_path):
    request = ImageRequest.create(model=str(tiny_sd_model), prompt="a red circle", seed=3, count=2, width=64,
                                  height=64, num_inference_steps=2)
    results = image_run.generate_images(request, output=tmp_path / "img", settings=get_settings())
    first, second = (json.loads(r.sidecar.read_text())["timings"] for r in results)
    for timings in (first, second):
        assert timings["denoise_s"] > 0 and timings["decode_s"] > 0 and timings["encode_s"] > 0
        adds_up(timings)
    assert first["plan_s"] > 0 and first["encode_prompt_s"] > 0  # the run's start is the first image's
    assert second["encode_prompt_s"] == second["plan_s"] == second["load_s"] == 0.0


CHECK_ONLY = """
import sys
from t2v.families import family_of_folder
from t2v.models.registry import lookup
from t2v.requests import GenerationRequest
from t2v.sampling import runtime
path = lookup("t2v-shapes").bundled_path
runtime.check(family_of_folder(path), GenerationRequest(prompt="x", model=str(path)))
print("torch" in sys.modules)
"""


def test_checking_a_default_request_leaves_torch_to_the_imports_stage():
    """The checks a run makes while it is planned import no torch for a default request: in a new process its
    import (about 2 s on 2 cores) falls in the record's ``imports`` stage, not in ``plan`` (it fell in ``plan``
    when the weights check found the device it did not need)."""
    done = subprocess.run([sys.executable, "-c", CHECK_ONLY], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
