"""What a dry run counts of one call (t2v.planner.counting): the same peak, FLOPs and operator calls whether a meta
operator call is made again from an earlier one's metadata (and FLOPs) or its meta kernel and the FLOP counter's
decompositions run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from t2v.planner import counting
from t2v.planner.counting import meta_cost


class Blocks(nn.Module):
    """Repeated blocks (the calls a dry run sees again and again), a norm whose meta kernel is a Python
    decomposition, an in-place op, views and a reduction that returns a named tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU())
                                    for _ in range(4))
        self.proj = nn.Linear(8, 16)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
            x.mul_(0.5)
        values, _ = x.max(dim=1)
        y = self.proj(x.flatten(2).transpose(1, 2))
        return y.view(y.shape[0], -1).sum() + values.mean()


@pytest.fixture
def no_reuse(monkeypatch):
    """meta_cost with every call run (the reuse switched off)."""

    def run(fn, part="denoiser"):
        with monkeypatch.context() as m:
            m.setattr(counting, "reuse_key", lambda func, args, kwargs: None)
            return meta_cost(fn, part)

    return run


@pytest.fixture(autouse=True)
def empty_tables():
    counting._CALLS.clear()
    counting._OUTPUTS.clear()


def test_reused_outputs_count_the_same_as_running_every_meta_kernel(no_reuse):
    model = Blocks().to("meta")
    call = lambda: model(torch.zeros(2, 8, 24, 24, device="meta"))  # noqa: E731
    first = meta_cost(call)  # fills the reuse tables
    assert counting._CALLS and counting._OUTPUTS, "repeated calls are kept"
    again = meta_cost(call)  # mostly reused outputs now
    plain = no_reuse(call)
    assert first == again == plain
    assert plain.flops > 0 and plain.peak > 0 and plain.ops > 20


def test_a_kept_output_is_made_fresh_with_the_same_metadata_and_other_shapes_run_their_kernel():
    model = Blocks().to("meta")
    small = meta_cost(lambda: model(torch.zeros(1, 8, 16, 16, device="meta")))
    large = meta_cost(lambda: model(torch.zeros(1, 8, 32, 32, device="meta")))
    assert large.peak == pytest.approx(4 * small.peak, rel=0.05) and large.flops > 3 * small.flops
    # The same call under another default dtype is another call (factory ops read it), and a kept output is a
    # new tensor each time, never a view of an earlier one.
    with torch.inference_mode(), counting._MetaOutputs():
        made = {}
        for dtype in (torch.float64, torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            try:
                made.setdefault(dtype, []).append(torch.full((2, 3), 1.5, device="meta") * 2.0)
            finally:
                torch.set_default_dtype(torch.float32)
    assert [t.dtype for t in made[torch.float64]] == [torch.float64] * 2 and made[torch.float32][0].dtype == torch.float32
    first, second = made[torch.float64]
    assert first is not second and first.shape == second.shape == (2, 3) and not second._is_view()


def test_real_tensors_and_views_always_run():
    with counting._MetaOutputs():  # (inference mode does not mark views)
        real = torch.ones(3) + torch.ones(3)  # not meta: computed, never made from metadata
        view = torch.zeros(4, 6, device="meta").view(6, 4)
    assert real.tolist() == [2.0, 2.0, 2.0] and view._is_view() and view.shape == (6, 4)
