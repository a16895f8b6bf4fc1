"""A run's private view of a module, and the decoded frames' conversion to uint8 where they are made."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers.video_processor import VideoProcessor

from t2v.sampling.vae import to_uint8, video_uint8
from t2v.sampling.views import private_view


class Cached(torch.nn.Module):
    """A module that keeps per-call state on itself, as Wan's causal VAE keeps its feature cache."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.register_buffer("scale", torch.ones(3))
        self.rope = torch.arange(4.0)  # a plain tensor attribute
        self.cache: list = []
        self.config = {"channels": 3}

    def forward(self, x):
        self.cache = [x]
        return self.conv(x) * self.scale[:, None, None]


def test_a_view_shares_every_tensor_and_copies_every_module_and_hook_table():
    base = torch.nn.Sequential(Cached(), Cached())
    base[1] = base[0]  # a module reached twice stays one module in the view
    view = private_view(base)
    assert view is not base and type(view) is type(base)
    assert [id(p) for p in view.parameters()] == [id(p) for p in base.parameters()]
    assert [id(b) for b in view.buffers()] == [id(b) for b in base.buffers()]
    assert view[0] is view[1] and view[0] is not base[0] and view[0].rope is base[0].rope
    assert view[0].config == base[0].config and view[0].config is not base[0].config
    view[0].register_forward_hook(lambda *a: None)
    view[0].cache.append("mine")
    view(torch.zeros(1, 3, 2, 2))
    assert not base[0]._forward_hooks and base[0].cache == []
    assert view[0].cache[0].shape == (1, 3, 2, 2)
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(view(x), base(x))


def test_a_view_of_a_diffusers_model_keeps_its_hook_registry_apart():
    from diffusers import AutoencoderKLWan
    from diffusers.hooks import HookRegistry, ModelHook

    base = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1], num_res_blocks=1, temperal_downsample=[False])
    HookRegistry.check_if_exists_or_initialize(base)
    view = private_view(base)
    HookRegistry.check_if_exists_or_initialize(view).register_hook(ModelHook(), "mine")
    assert "mine" in view._diffusers_hook.hooks and "mine" not in base._diffusers_hook.hooks
    assert view._diffusers_hook._module_ref is view


def decoded(device: str, dtype) -> torch.Tensor:
    """A decoded video batch as a VAE hands it back: values around [-1, 1], with exact halves and the ends."""
    g = torch.Generator().manual_seed(0)
    video = torch.randn(1, 3, 5, 16, 24, generator=g) * 0.7
    video[0, 0, 0, 0, :8] = torch.tensor([-1.5, -1.0, 1.0, 1.5, 1 / 255 - 1, 2 / 255 - 1, 0.0, 3 / 255 - 1])
    return video.to(device, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_frames_converted_where_they_are_made_are_bitwise_the_numpy_path(dtype):
    video = decoded("cpu", dtype)
    processor = VideoProcessor(vae_scale_factor=8)
    want = to_uint8(processor.postprocess_video(video, output_type="np")[0])
    got = video_uint8(processor, video)
    assert got.dtype == np.uint8 and got.shape == (5, 16, 24, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    assert to_uint8(got) is got  # uint8 frames pass through the runner's conversion as they are


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_frames_converted_on_the_gpu_are_bitwise_the_numpy_path(dtype):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    processor = VideoProcessor(vae_scale_factor=8)
    video = decoded("cuda", dtype)
    want = to_uint8(processor.postprocess_video(video, output_type="np")[0])
    np.testing.assert_array_equal(video_uint8(processor, video), want)


@pytest.mark.parametrize("kind", ["wan", "ltx"])
def test_the_frames_handed_back_and_the_hash_recorded_are_the_decodes(kind, tmp_path, monkeypatch):
    """Whatever converts the decoded video where: the run's frames are the VAE's output through the numpy
    path, and the record's hash is theirs, as is the written file's record."""
    import t2v.families.ltx_steps as ltx_steps
    import t2v.families.wan as wan
    from t2v import generate
    from t2v.export import frames_sha256
    from tests.tinymodels import make_tiny_model

    decoded = []
    module = wan if kind == "wan" else ltx_steps

    def watched(processor, video):
        decoded.append(to_uint8(processor.postprocess_video(video, output_type="np")[0]))
        return video_uint8(processor, video)

    monkeypatch.setattr(module, "video_uint8", watched)
    folder = make_tiny_model(kind, tmp_path / kind, fp16_variant=False)
    result = generate("a red circle", model=str(folder), seed=1, num_inference_steps=2, output=tmp_path / "clip.mp4")
    assert len(decoded) == 1
    np.testing.assert_array_equal(result.frames, decoded[0])
    assert result.record["frames_sha256"] == frames_sha256(decoded[0])
    assert json.loads((tmp_path / "clip.json").read_text())["frames_sha256"] == frames_sha256(decoded[0])
