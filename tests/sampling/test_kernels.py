"""--attention's kernels on every transformer family: the kernel asked for is the one that runs (a spy in
diffusers' dispatcher), its frames match SDPA's, masks reach the kernels that take them, and what a family,
machine or dtype cannot use is refused before loading, naming what would work."""

from __future__ import annotations

import collections
import inspect

import numpy as np
import pytest
import torch

from t2v import generate
from t2v.errors import InvalidRequest
from t2v.families import get_family
from t2v.models.hub import CARDS
from t2v.requests import ATTENTION, MASKLESS_KERNELS, GenerationRequest
from t2v.sampling import accel, kernels

# One tiny model per family whose denoiser goes through diffusers' dispatcher: (frames, side) it needs.
FAMILIES = {"wan": (5, 32), "skyreels-v2": (5, 32), "helios": (33, 32), "kandinsky5": (5, 32), "anyflow": (5, 32),
            "cogvideox": (9, 32),
            "ltx": (9, 32), "ltx2": (9, 64), "hunyuan": (5, 32), "hunyuan15": (5, 32), "sana-video": (5, 32)}
KINDS = {"cogvideox": "cogvideox15"}  # CogVideoX 1.5's rotary embedding goes through the routed processor too
MASKED = {"ltx", "ltx2", "hunyuan", "hunyuan15", "sana-video"}  # a text mask


@pytest.fixture
def spy(monkeypatch):
    """Which diffusers back-ends ran, and whether each call had a mask: (backend, masked) -> calls."""
    from diffusers.models import attention_dispatch as dispatch

    kernels.register_flex()  # t2v's own flex function first, so the spy wraps it
    calls: collections.Counter = collections.Counter()
    registry = dispatch._AttentionBackendRegistry._backends
    for name, fn in list(registry.items()):
        def wrapped(*args, _fn=fn, _name=name, **kw):
            calls[(_name.value, kw.get("attn_mask") is not None)] += 1
            return _fn(*args, **kw)
        wrapped.__signature__ = inspect.signature(fn)
        monkeypatch.setitem(registry, name, wrapped)
    return calls


def run(folder, shape: tuple[int, int], attention: str = "auto"):
    frames, side = shape
    return generate(GenerationRequest.create(prompt="a red circle moving right", model=str(folder), seed=3,
                                             num_frames=frames, width=side, height=side, num_inference_steps=2,
                                             formats=(), attention=attention))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_kernel_a_family_takes_on_cpu_runs_and_matches_sdpa(family, tmp_path, spy):
    from tests.tinymodels import make_tiny_model

    card = next(c for c in CARDS if c.name == family)
    folder = make_tiny_model(KINDS.get(family, next(iter(card.tiny))), tmp_path / family)
    frames = FAMILIES[family]
    stock = run(folder, frames)
    assert stock.frames.std() > 0
    masked = any(masked for (_, masked) in spy)
    assert masked == (family in MASKED), f"{family}: its attention {'passes' if masked else 'passes no'} mask"
    # sdpa-math is SDPA pinned like sdpa-flash (one dispatcher entry each): run on one family of each kind
    cpu_kernels = [k for k in card.kernels if k in ("sdpa-flash", "flex") or (k == "sdpa-math" and family in
                                                                              ("wan", "ltx"))]
    assert "flex" in cpu_kernels and ("sdpa-flash" in cpu_kernels) == (family not in MASKED)
    for kernel in cpu_kernels:
        spy.clear()
        result = run(folder, frames, kernel)
        ran = {name for (name, _) in spy}
        assert ran == {kernels.KERNELS[kernel].backend}, f"{family} {kernel}: ran {ran}"
        if family in MASKED and kernel != "sdpa-flash":
            assert any(m for (_, m) in spy), "the mask reached the kernel"
        diff = np.abs(result.frames.astype(int) - stock.frames.astype(int)).max()
        assert diff <= 2, f"{family} {kernel}: {diff}/255 from SDPA"
        assert result.record["attention"] == kernel


def test_every_card_offers_only_kernels_that_take_what_its_attention_passes():
    # Wan-Animate's and SkyReels-V2's diffusion-forcing transformers are Wan's and SkyReels-V2's, with no mask.
    for card in CARDS:
        if card.name in {*FAMILIES, "wan-animate", "skyreels-v2-df"}:
            offered = set(card.kernels)
            assert offered == set(ATTENTION) - (set(MASKLESS_KERNELS) if card.name in MASKED else set()), card.name
        else:  # the UNets' processors call SDPA themselves
            assert card.kernels == ("auto", "sdpa"), card.name
    assert set(kernels.KERNELS) == set(ATTENTION) - {"auto"}


def refusal(family: str, **fields) -> str:
    with pytest.raises(InvalidRequest) as info:
        accel.check(get_family(family), GenerationRequest.create(prompt="p", **fields), model="m")
    assert info.value.field == "attention"
    return str(info.value)


@pytest.mark.parametrize("kernel", sorted(MASKLESS_KERNELS))
def test_a_kernel_without_masks_is_refused_for_a_masked_family(kernel):
    message = refusal("ltx", attention=kernel, device="cpu")
    assert "passes a mask" in message and f"the {kernel} kernel does not take" in message
    assert "nearest valid: sdpa" in message


@pytest.mark.parametrize("kernel", ["sdpa-efficient", "sdpa-cudnn", "flash", "sage"])
def test_cuda_only_kernels_refused_on_cpu_naming_what_runs_here(monkeypatch, kernel):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = refusal("wan", attention=kernel)
    assert "needs a CUDA GPU" in message and "on cpu" in message
    assert "usable for this run: sdpa, sdpa-flash, sdpa-math, flex" in message


@pytest.fixture
def cuda_card(monkeypatch):
    """A CUDA machine whose card's compute capability the test sets (everything installed)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(accel, "installed", lambda name: True)
    card = {"capability": (9, 0)}
    monkeypatch.setattr(accel, "cuda_capability", lambda: card["capability"])
    return card


def test_cuda_kernels_check_the_card_and_the_dtype(cuda_card):
    for kernel in ("sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "flex", "flash", "sage"):
        accel.check(get_family("wan"), GenerationRequest.create(prompt="p", attention=kernel, device="cuda"),
                    model="m")
    message = refusal("wan", attention="sdpa-cudnn", device="cuda", dtype="fp32")
    assert "fp16 or bf16" in message and "usable for this run: sdpa, sdpa-efficient, sdpa-math, flex" in message
    cuda_card["capability"] = (7, 5)  # a T4
    message = refusal("hunyuan", attention="sdpa-cudnn", device="cuda")
    assert "compute capability 8.0" in message and "this one is 7.5" in message
    assert "usable for this run: sdpa, sdpa-efficient, sdpa-math, flex" in message


def test_flex_refused_where_torch_compile_cannot_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accel, "cpp_compiler", lambda: None)
    message = refusal("ltx", attention="flex")
    assert "runs through torch.compile" in message and "C++ compiler" in message
    assert "usable for this run: sdpa, sdpa-math" in message


@pytest.mark.parametrize("shape", ["padding", "bool4d", "additive4d"])
def test_flex_reads_every_mask_layout_as_sdpa_does(shape):
    from diffusers.models.attention_dispatch import AttentionBackendName, dispatch_attention_fn

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 24, 2, 8), torch.randn(2, 40, 2, 8), torch.randn(2, 40, 2, 8)
    keep = torch.rand(2, 40) > 0.3
    keep[:, 0] = True
    mask = {"padding": keep, "bool4d": keep[:, None, None, :].expand(2, 1, 24, 40),
            "additive4d": torch.zeros(2, 2, 1, 40).masked_fill(~keep[:, None, None, :], float("-inf"))}[shape]
    kernels.register_flex()
    flex = dispatch_attention_fn(q, k, v, attn_mask=mask, backend=AttentionBackendName.FLEX)
    sdpa = dispatch_attention_fn(q, k, v, attn_mask=mask, backend=AttentionBackendName.NATIVE)
    assert torch.allclose(flex, sdpa, atol=1e-5)
    causal = dispatch_attention_fn(q, q, q, is_causal=True, backend=AttentionBackendName.FLEX)
    assert torch.allclose(causal, torch.nn.functional.scaled_dot_product_attention(
        *(t.transpose(1, 2) for t in (q, q, q)), is_causal=True).transpose(1, 2), atol=1e-5)


def test_compiled_flex_matches_eager_and_compiles_once(monkeypatch):
    """The form a run outside --compile uses: compiled once, reused across masks of the same shape."""
    import torch._dynamo

    monkeypatch.setattr(kernels, "COMPILE_FLEX", True)
    monkeypatch.setattr(kernels, "_flex_state", {})
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 16, 2, 8), torch.randn(1, 32, 2, 8), torch.randn(1, 32, 2, 8)
    for cut in (20, 25):
        keep = torch.arange(32)[None, :] < cut
        got = kernels.flex_attention(q, k, v, attn_mask=keep)
        want = torch.nn.functional.scaled_dot_product_attention(
            *(t.transpose(1, 2) for t in (q, k, v)), attn_mask=keep[:, None, None, :]).transpose(1, 2)
        assert torch.allclose(got, want, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1


def test_cogvideox_routed_kernel_compiles_and_leaves_the_shared_model_alone(tmp_path, spy, monkeypatch):
    """CogVideoX's processors call SDPA themselves: on the run's view their calls go to the dispatcher (a torch
    function mode, which torch.compile traces into its full-graph blocks); the loaded model keeps its own."""
    import t2v
    from tests.tinymodels import make_tiny_model

    monkeypatch.setattr(accel, "COMPILE_BACKEND", "aot_eager")
    folder = make_tiny_model("cogvideox15", tmp_path / "cogvideox")
    stock = run(folder, FAMILIES["cogvideox"])
    spy.clear()
    compiled = generate(GenerationRequest.create(prompt="a red circle moving right", model=str(folder), seed=3,
                                                 num_frames=9, width=32, height=32, num_inference_steps=2,
                                                 formats=(), attention="sdpa-math", compile=True))
    assert {name for (name, _) in spy} == {"_native_math"} and compiled.record["timings"]["compile_s"] > 0
    assert np.abs(compiled.frames.astype(int) - stock.frames.astype(int)).max() <= 2
    base = t2v.load_pipeline(str(folder), device="cpu", dtype="fp32").transformer
    assert all(type(m.processor).__name__ == "CogVideoXAttnProcessor2_0"
               for m in base.modules() if hasattr(m, "processor"))
