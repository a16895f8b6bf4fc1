"""The run's ETA (t2v.progress.ProgressEmitter): predicted before the first step, corrected by the steps run,
covering the decodes still to come; and what a real run reports."""

import math

import pytest

from t2v import generate
from t2v.progress import ProgressEmitter
from t2v.requests import GenerationRequest


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def emitter(**expect):
    events, clock = [], Clock()
    emit = ProgressEmitter(events.append, 0.0, clock=clock)
    if expect:
        emit.expect(**expect)
    return emit, events, clock


def at(emit, clock, t, *args):
    clock.t = t
    emit(*args)


def test_predicted_eta_from_the_first_step_then_corrected_by_the_steps_run():
    emit, events, clock = emitter(step_s=2.0, decode_s=5.0)
    at(emit, clock, 1.0, "encode_prompt")
    at(emit, clock, 1.0, "denoise", 0, 10)
    assert events[0].eta_s is None  # before denoising: no step count yet
    assert events[1].eta_s == pytest.approx(10 * 2.0 + 5.0)
    at(emit, clock, 5.0, "denoise", 1, 10)  # the first step took 4 s, twice the prediction: warm-up in it
    assert events[-1].eta_s == pytest.approx(9 * 2.0 + 5.0)  # so set aside while the prediction stands
    at(emit, clock, 9.0, "denoise", 2, 10)  # the second took 4 s too
    rate = (2.0 + 4.0) / 2  # an estimate weighs as one measured step
    assert events[-1].eta_s == pytest.approx(8 * rate + 5.0 * rate / 2.0)
    for step in range(3, 11):  # then 4 s each: the measured steps take over
        at(emit, clock, 1.0 + 4.0 * step, "denoise", step, 10)
    rate = (2.0 + 36.0) / 10
    assert events[-1].eta_s == pytest.approx(5.0 * rate / 2.0)
    at(emit, clock, 41.0, "decode")
    assert events[-1].eta_s == pytest.approx(5.0 * rate / 2.0)
    assert emit.eta(43.0) == pytest.approx(5.0 * rate / 2.0 - 2.0)  # counts down while the decode runs
    assert emit.eta(100.0) == 0.0
    at(emit, clock, 50.0, "export")
    assert events[-1].eta_s is None


def test_a_learned_prediction_weighs_more_than_one_step():
    emit, events, clock = emitter(step_s=2.0, decode_s=5.0, learned=True)
    at(emit, clock, 0.0, "denoise", 0, 10)
    at(emit, clock, 4.0, "denoise", 1, 10)
    at(emit, clock, 8.0, "denoise", 2, 10)
    rate = (3 * 2.0 + 4.0) / 4
    assert events[-1].eta_s == pytest.approx(8 * rate + 5.0 * rate / 2.0)


def test_a_slow_first_step_does_not_send_the_eta_up_and_back():
    """The first step also pays for warm-up (page-ins, allocator, kernels): counted, it raised the ETA by half and
    the next steps brought it back down. Set aside, the ETA only falls on a run whose steps match the prediction."""
    emit, events, clock = emitter(step_s=1.0, decode_s=2.0)
    at(emit, clock, 0.0, "denoise", 0, 20)
    t = 5.0  # the first step: 5 s
    at(emit, clock, t, "denoise", 1, 20)
    for step in range(2, 21):
        t += 1.0
        at(emit, clock, t, "denoise", step, 20)
    etas = [e.eta_s for e in events]
    assert all(later <= earlier for earlier, later in zip(etas, etas[1:])), etas
    assert etas[1] == pytest.approx(19 * 1.0 + 2.0)


def test_without_a_prediction_the_steps_left_at_the_measured_rate():
    emit, events, clock = emitter()
    at(emit, clock, 0.0, "denoise", 0, 10)
    assert events[-1].eta_s is None
    at(emit, clock, 2.0, "denoise", 1, 10)
    assert events[-1].eta_s == pytest.approx(18.0)  # the first step alone, while nothing else is known
    at(emit, clock, 3.0, "denoise", 2, 10)
    assert events[-1].eta_s == pytest.approx(8.0)  # then the steps after it
    at(emit, clock, 19.0, "denoise", 10, 10)
    at(emit, clock, 20.0, "decode")
    assert events[-1].eta_s is None  # nothing known of the decode
    emit, events, clock = emitter(step_s=math.nan, decode_s=math.nan)  # a plan without times
    at(emit, clock, 0.0, "denoise", 0, 10)
    assert events[-1].eta_s is None


def test_a_resumed_run_counts_only_the_steps_it_runs():
    emit, events, clock = emitter()
    at(emit, clock, 0.0, "denoise", 6, 10)  # resumed at step 6 of 10
    at(emit, clock, 2.0, "denoise", 7, 10)
    assert events[-1].eta_s == pytest.approx(3 * 2.0)


def test_a_long_video_counts_every_segment_decode_and_not_the_decode_time_as_steps():
    emit, events, clock = emitter(step_s=1.0, decode_s=3.0)
    emit.decodes = 2
    at(emit, clock, 0.0, "denoise", 0, 8)
    assert events[-1].eta_s == pytest.approx(8 * 1.0 + 2 * 3.0)
    for step in range(1, 5):
        at(emit, clock, float(step), "denoise", step, 8)
    assert events[-1].eta_s == pytest.approx(4 * 1.0 + 2 * 3.0)
    at(emit, clock, 4.0, "decode")
    assert events[-1].eta_s == pytest.approx(3.0 + 4 * 1.0 + 3.0)
    at(emit, clock, 10.0, "encode_prompt")  # the second segment's prompt: the ETA stays
    assert events[-1].eta_s == pytest.approx(4 * 1.0 + 6.0)
    at(emit, clock, 10.0, "denoise", 4, 8)  # the first decode took 6 s; the second segment starts
    # still 1 s a step (the decode's 6 s are not step time), and the measured decode replaces the prediction
    assert events[-1].eta_s == pytest.approx(4 * 1.0 + 6.0)


def test_a_run_without_steps_has_its_decodes_eta():
    emit, events, clock = emitter(step_s=1.0, decode_s=3.0)  # video-to-video at strength 0: straight to decoding
    at(emit, clock, 0.0, "decode")
    assert events[-1].eta_s == pytest.approx(3.0)


def test_nobody_listening_costs_nothing():
    emit = ProgressEmitter(None, 0.0)
    assert not emit.wanted
    emit("denoise", 1, 2)  # no error, no event


def test_a_real_run_reports_its_eta_from_the_first_step(tiny_model):
    events = []
    request = GenerationRequest.create(prompt="a red circle moving right", model=str(tiny_model), seed=5, num_frames=6,
                                       width=48, height=40, num_inference_steps=4, formats=())
    generate(request, on_progress=events.append)
    start = next(e for e in events if e.stage == "denoise")
    assert (start.step, start.total) == (0, 4)
    assert start.eta_s is not None and math.isfinite(start.eta_s) and start.eta_s > 0  # predicted: nothing run yet
    steps = [e for e in events if e.stage == "denoise" and e.step]
    assert [e.step for e in steps] == [1, 2, 3, 4] and all(e.eta_s is not None for e in steps)
    assert steps[-1].eta_s > 0  # the decode is still to come
    decode = next(e for e in events if e.stage == "decode")
    assert decode.eta_s is not None and decode.eta_s > 0
    assert all(e.eta_s is None for e in events if e.stage in ("load", "encode_prompt", "export", "done"))
