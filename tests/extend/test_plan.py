"""Longer videos, planned (no model): segment positions, prompts and seeds, the seam blend, the guide clip, and
the request's checks naming the field at fault."""

from __future__ import annotations

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.extend.plan import guide, join, plan_segments, prompt_at
from t2v.requests import GenerationRequest


def req(**fields):
    base = {"prompt": "a red ball", "seed": 10, "num_frames": 8, "fps": 8.0, "width": 64, "height": 64,
            "num_inference_steps": 4}
    return GenerationRequest.create(**{**base, **fields})


def test_seconds_make_exactly_enough_segments_each_continuing_the_last():
    plan = plan_segments(req(seconds=4), clip_frames=0, continuation="video")  # 32 frames, 8 a segment, overlap 4
    assert plan.new_frames == 32 and plan.total == 32 and plan.overlap == 4
    assert [s.start for s in plan.segments] == [0, 4, 8, 12, 16, 20, 24]
    assert [s.kind for s in plan.segments] == ["text"] + ["video"] * 6
    assert [s.seed for s in plan.segments] == list(range(10, 17))
    assert plan.segments[-1].start + 8 >= 32 > plan.segments[-2].start + 8
    # image-to-video continuation shares one frame: fewer segments for the same length
    plan = plan_segments(req(seconds=4), clip_frames=0, continuation="image")
    assert plan.overlap == 1 and [s.start for s in plan.segments] == [0, 7, 14, 21, 28]


def test_extending_a_clip_counts_new_frames_after_it():
    plan = plan_segments(req(seconds=1.5, extend="clip.mp4"), clip_frames=20, continuation="video")
    assert plan.total == 32 and plan.new_frames == 12
    assert [(s.kind, s.start) for s in plan.segments] == [("video", 16), ("video", 20), ("video", 24)]
    plan = plan_segments(req(extend="clip.mp4"), clip_frames=20, continuation="video")  # no seconds: one segment
    assert len(plan.segments) == 1 and plan.total == 24


def test_the_prompt_schedule_names_each_segments_prompt_by_its_first_new_frame():
    r = req(prompt_schedule=["0: a red ball", "10: a blue ball", "17: a green ball"], overlap=2)
    assert prompt_at(r, 9) == "a red ball" and prompt_at(r, 10) == "a blue ball" and prompt_at(r, 40) == "a green ball"
    plan = plan_segments(r, clip_frames=0, continuation="video")
    assert plan.new_frames == 17 + 8  # one segment past the last entry
    # segments start at 0, 6, 12, 18: their first new frames are 0, 8, 14, 20
    assert [s.prompt for s in plan.segments] == ["a red ball", "a red ball", "a blue ball", "a green ball"]
    late = req(prompt="the start", prompt_schedule=["16: later"], seconds=3)
    assert prompt_at(late, 0) == "the start" and prompt_at(late, 16) == "later"


def test_join_cross_fades_the_overlap_and_keeps_everything_else():
    old = np.full((6, 2, 2, 3), 0, np.uint8)
    new = np.full((5, 2, 2, 3), 240, np.uint8)
    out = join(old, new, 3)
    assert len(out) == 6 + 5 - 3
    assert (out[:3] == 0).all() and (out[6:] == 240).all()
    assert [int(f[0, 0, 0]) for f in out[3:6]] == [60, 120, 180]  # weights 1/4, 2/4, 3/4 of the new frames
    assert (join(np.zeros((0, 2, 2, 3), np.uint8), new, 0) == new).all()


def test_guide_is_the_overlap_then_the_last_frame_held():
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None].repeat(3, -1)
    g = guide(frames, 3, 8)
    assert g.shape == (8, 1, 1, 3) and [int(x) for x in g[:, 0, 0, 0]] == [7, 8, 9, 9, 9, 9, 9, 9]


@pytest.mark.parametrize("fields, field, words", [
    ({"overlap": 2}, "overlap", "only longer videos"),
    ({"continue_strength": 0.5}, "continue_strength", "only longer videos"),
    ({"seconds": 3, "video": "in.mp4"}, "video", "cannot start from an input video"),
    ({"prompt_schedule": ["a red ball"]}, "prompt_schedule", "is not 'INDEX: prompt'"),
    ({"prompt_schedule": ["8: b", "4: a"]}, "prompt_schedule", "list keyframes in order"),
    ({"seconds": 0}, "seconds", "greater than 0"),
])
def test_bad_long_fields_name_the_field(fields, field, words):
    with pytest.raises(InvalidRequest) as e:
        req(**fields)
    assert e.value.field == field and words in str(e.value)


def test_overlap_that_leaves_no_new_frame_and_too_many_segments_are_refused_with_the_nearest_valid_value():
    with pytest.raises(InvalidRequest, match="nearest valid: 7") as e:
        plan_segments(req(seconds=3, overlap=8), clip_frames=0, continuation="video")
    assert e.value.field == "overlap"
    with pytest.raises(InvalidRequest, match=r"over the limit of 64; at most 32\.5 seconds") as e:
        plan_segments(req(seconds=500), clip_frames=0, continuation="video")
    assert e.value.field == "seconds"
