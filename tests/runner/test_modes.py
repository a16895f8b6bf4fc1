"""The runner's modes: each kind of request is a registered Mode whose attributes say what it takes, in step with
the request contract's own declaration of which modes take which fields."""

from __future__ import annotations

import pytest

from t2v.errors import InvalidRequest
from t2v.requests import MODES as REQUEST_MODES
from t2v.requests import REQUEST_TYPES, GenerationRequest, ImageRequest, SequenceRequest, applies
from t2v.runner.mode import MODES, mode_of
from t2v.runner.modes import RUNS
from t2v.settings import Settings

KEYS = ["0: a red circle", "3: a blue square"]


def test_every_request_mode_has_one_mode_and_one_run():
    assert tuple(MODES) == REQUEST_MODES
    assert list(RUNS) == list(MODES) and all(RUNS[name].mode is MODES[name] for name in MODES)
    with pytest.raises(InvalidRequest, match="mode: unknown 'gif'") as e:
        mode_of(type("Odd", (), {"mode": "gif"})())
    assert e.value.field == "mode"


@pytest.mark.parametrize("name", REQUEST_MODES)
def test_what_a_mode_takes_is_what_the_contract_declares_for_it(name):
    """The flags agree with the fields' ``only`` (the one declaration of which modes use a field)."""
    mode, cls = MODES[name], REQUEST_TYPES[name]

    def takes(field: str) -> bool:
        return field in cls.model_fields and applies(cls, field, name)

    assert mode.takes_inputs == takes("image") == takes("motion_adapter")
    assert mode.takes_long == takes("seconds") == takes("extend")
    assert mode.takes_speed_options == takes("cache") == takes("attention")
    assert mode.takes_family_settings == takes("extras") == takes("preset")
    assert mode.takes_post == takes("post")
    assert mode.plans_memory == takes("memory")


def test_default_models_come_from_the_modes_setting():
    settings = Settings(default_model="video/model", default_image_model="image/model")
    assert MODES["video"].default_model_of(settings) == "video/model"
    assert MODES["sequence"].default_model_of(settings) == MODES["image"].default_model_of(settings) == "image/model"
    assert MODES["post"].default_model_of(settings) is None


@pytest.mark.parametrize("request_, field", [
    (ImageRequest.create(prompt="a cat", image="cat.png"), "image"),
    (SequenceRequest.create(keyframes=KEYS, seconds=4.0), "seconds"),
    (SequenceRequest.create(keyframes=KEYS, cache="fbc"), "cache"),
    (ImageRequest.create(prompt="a cat", compile=True), "compile"),
    (ImageRequest.create(prompt="a cat", post={"deflicker": True}), "post"),
])
def test_a_mode_refuses_what_it_does_not_take(request_, field):
    with pytest.raises(InvalidRequest) as e:
        mode_of(request_).check(request_)
    assert e.value.field == field
    with pytest.raises(InvalidRequest, match="motion_adapter: a motion adapter makes videos") as e:
        mode_of(request_).check_adapter("guoyww/animatediff-motion-adapter-v1-5-3")
    assert e.value.field == "motion_adapter"


def test_what_a_mode_takes_passes_its_check():
    video = GenerationRequest.create(prompt="a cat", image="cat.png", seconds=4.0, cache="fbc", post={"deflicker": True})
    mode_of(video).check(video)
    mode_of(video).check_adapter("guoyww/animatediff-motion-adapter-v1-5-3")
    sequence = SequenceRequest.create(keyframes=KEYS, post={"deflicker": True})
    mode_of(sequence).check(sequence)
