"""Checkpoints hold plain tensors and values, read back with ``torch.load(weights_only=True)``; a file that
cannot be read that way is ignored (the run starts from step 0), never executed and never a failure."""

from __future__ import annotations

import logging
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from t2v.sampling import checkpoint as ckpt
from t2v.sampling.base import CheckpointSpec
from t2v.errors import Cancelled
from t2v import generate
from t2v.requests import GenerationRequest


def request(model):
    return GenerationRequest.create(prompt="a red circle moving right", model=str(model), seed=5, num_frames=4,
                                    width=32, height=32, num_inference_steps=4, formats=())


class Payload:
    """A pickled object that would leave a file behind if it were ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_state_round_trips_through_weights_only(tmp_path):
    scheduler = SimpleNamespace(config={"x": 1}, timesteps=np.arange(5, dtype=np.int64), sigmas=torch.linspace(1, 0, 5),
                                model_outputs=[None, torch.ones(2)], _step_index=3, flag=True, note="dpm")
    gen = torch.Generator("cpu").manual_seed(7)
    path = tmp_path / "job.ckpt"
    ckpt.save(path, fingerprint="fp", step=3, latents=torch.zeros(1, 4, 2, 4, 4), scheduler=scheduler, generator=gen)
    assert torch.load(path, weights_only=True)["step"] == 3  # nothing in the file needs pickle
    state = ckpt.load(path, "fp")
    assert isinstance(state["scheduler"]["timesteps"], np.ndarray)
    assert np.array_equal(state["scheduler"]["timesteps"], scheduler.timesteps)
    assert torch.equal(state["scheduler"]["sigmas"], scheduler.sigmas)
    assert state["scheduler"]["model_outputs"][0] is None and state["scheduler"]["_step_index"] == 3
    assert "config" not in state["scheduler"]
    assert torch.equal(state["generator"], gen.get_state())
    assert ckpt.load(path, "another request") is None


def test_a_checkpoint_with_pickled_objects_is_ignored_not_run(tiny_model, tmp_path, caplog):
    spec = CheckpointSpec(path=tmp_path / "job.ckpt", every=1)
    seen = []
    with pytest.raises(Cancelled):
        generate(request(tiny_model), checkpoint=spec, on_progress=seen.append,
                 should_cancel=lambda: any(e.step == 2 for e in seen))
    state = torch.load(spec.path, weights_only=True)
    marker = tmp_path / "unpickled"
    state["scheduler"]["evil"] = Payload(marker)
    spec.path.write_bytes(pickle.dumps(state, protocol=2))
    with caplog.at_level(logging.WARNING, logger="t2v.sampling.checkpoint"):
        result = generate(request(tiny_model), checkpoint=spec)
    assert "resumed_from_step" not in result.record  # started over from step 0
    assert not marker.exists()
    assert any("ignoring unreadable checkpoint" in r.message for r in caplog.records)
    assert np.array_equal(result.frames, generate(request(tiny_model)).frames)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps({"step": 2}, protocol=2)])
def test_torn_or_foreign_files_are_ignored(tmp_path, content, caplog):
    path = tmp_path / "job.ckpt"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="t2v.sampling.checkpoint"):
        assert ckpt.load(path, "fp") is None
    assert caplog.records
