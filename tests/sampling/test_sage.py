"""--attention sage with sageattention 1.x (PyPI's release): t2v's wrapper in diffusers' dispatcher.

The kernel itself is Triton code for CUDA GPUs; on the CPU these tests put a reference attention in its place
(what the kernel computes, up to its int8 rounding: softmax(Q·K^T * scale)·V on (batch, tokens, heads, channels)
tensors) and check everything around it: the out-of-place K smoothing, the head padding and its scale, the
dispatcher's routing, full-graph compile and the choice of back-end by version. The GPU-marked test in
test_accel.py runs the real kernel against SDPA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from t2v.sampling import accel, sage

calls = []


def reference_kernel(query, key, value, is_causal, scale):
    """softmax(Q·K^T * scale)·V for (batch, tokens, heads, channels) tensors, recording the call."""
    calls.append(dict(head=query.shape[-1], scale=scale, key_mean=key.mean(dim=1).abs().max().item()))
    out = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (query, key, value)), is_causal=is_causal,
                                         scale=scale)
    return out.transpose(1, 2)


@pytest.fixture
def cpu_kernel(monkeypatch):
    calls.clear()
    monkeypatch.setattr(sage, "kernel_call", reference_kernel)
    return calls


def qkv(head: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 40, 3, head, generator=g) + 0.5 for _ in range(3)]


def sdpa_nhd(q, k, v, causal=False):
    return F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), is_causal=causal).transpose(1, 2)


@pytest.mark.parametrize("head", [16, 64, 80, 128])
def test_wrapper_gives_attention_of_the_real_head_size(cpu_kernel, head):
    q, k, v = qkv(head)
    key_before = k.clone()
    out = sage.sage_nhd(q, k, v)
    assert out.shape == q.shape
    torch.testing.assert_close(out, sdpa_nhd(q, k, v), atol=1e-5, rtol=1e-5)
    assert torch.equal(k, key_before)  # smoothed out of place (1.x subtracts the mean in place)
    call = calls[-1]
    assert call["head"] == sage.padded_size(head) and call["head"] in sage.HEAD_SIZES
    assert call["scale"] == pytest.approx(head ** -0.5)  # the real size's scale, not the padded one's
    assert call["key_mean"] < 1e-5  # the kernel gets K with its mean over the tokens removed


def test_causal_and_head_limit(cpu_kernel):
    q, k, v = qkv(64)
    torch.testing.assert_close(sage.sage_nhd(q, k, v, is_causal=True), sdpa_nhd(q, k, v, True), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at most 128 channels, not 160"):
        sage.padded_size(160)


def test_backend_follows_the_installed_release(monkeypatch):
    monkeypatch.setattr(sage, "diffusers_takes_it", lambda: True)  # sageattention 2.1.1 or later
    assert accel.backend_name("sage") == "sage"  # diffusers' own back-end
    monkeypatch.setattr(sage, "diffusers_takes_it", lambda: False)  # 1.x
    assert accel.backend_name("sage") == sage.FALLBACK_BACKEND
    assert accel.backend_name("flash") == "flash" and accel.backend_name("sdpa") == "native"


def test_dispatcher_routes_to_the_wrapper_and_compiles_as_one_op(cpu_kernel):
    from diffusers.models.attention_dispatch import dispatch_attention_fn

    sage.register()
    q, k, v = qkv(64, seed=1)
    out = dispatch_attention_fn(q, k, v, backend=sage.FALLBACK_BACKEND)
    torch.testing.assert_close(out, sdpa_nhd(q, k, v), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no mask"):
        dispatch_attention_fn(q, k, v, attn_mask=torch.ones(40, 40, dtype=torch.bool), backend=sage.FALLBACK_BACKEND)

    def block(q, k, v):
        return dispatch_attention_fn(q * 2, k, v, backend=sage.FALLBACK_BACKEND) + 1

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)  # a graph break would raise here
    torch.testing.assert_close(compiled(q, k, v), block(q, k, v), atol=1e-5, rtol=1e-5)


def test_a_tiny_wan_with_the_sage_view_gives_the_sdpa_frames(cpu_kernel, tmp_path):
    """The kernel set on a run's view of a tiny Wan (its small heads padded to 64 channels): its transformer's
    output equals SDPA's; the cached model keeps no back-end."""
    import t2v
    from t2v.sampling.views import private_view
    from tests.tinymodels import make_tiny_model

    base = t2v.load_pipeline(str(make_tiny_model("wan", tmp_path / "wan", seed=0)), device="cpu",
                             dtype="fp32").transformer
    view = private_view(base)
    assert accel.set_kernel(view, "sage") > 0
    g = torch.Generator().manual_seed(0)
    cfg = base.config
    latents = torch.randn(1, cfg.in_channels, 2, 8, 8, generator=g)
    text = torch.randn(1, 6, cfg.text_dim, generator=g)
    t = torch.tensor([500.0])
    with torch.inference_mode():
        ours = view(latents, t, text, return_dict=False)[0]
        theirs = base(latents, t, text, return_dict=False)[0]
    assert calls and all(c["head"] == 64 for c in calls)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4)
    assert all(getattr(m.processor, "_attention_backend", None) is None
               for m in base.modules() if hasattr(m, "processor"))
