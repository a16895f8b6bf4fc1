"""Decoder refinement on the UNet's own latents (``t2v train --refine-steps``)."""

from __future__ import annotations

import json
import shutil

import pytest

from t2v.errors import InvalidRequest
from t2v.train.trainer import TrainConfig, train

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("refine") / "model"
    train(TrainConfig(data="shapes", out=out, preset="tiny", steps=20, batch=4, lr=2e-3, warmup=5, vae_steps=20,
                      checkpoint_every=20, preview_every=20, clips=16, device="cpu"))
    return out


def _components(folder):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from t2v.models.temporal import apply_temporal_config

    return (apply_temporal_config(UNet3DConditionModel.from_pretrained(folder, subfolder="unet")).eval(),
            AutoencoderKL.from_pretrained(folder, subfolder="vae").eval(),
            CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval(),
            CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
            DDIMScheduler.from_pretrained(folder, subfolder="scheduler"))


def test_own_latents_are_seeded_re_renderings_and_refining_fits_the_decoder_to_them(base):
    import torch

    from t2v.train.data import shapes_clips
    from t2v.train.refine import own_latents, refine_decoder
    from t2v.train.common import encode_latents, to_tensor

    unet, vae, te, tok, sch = _components(base)
    clips = shapes_clips(6, size=32, frames=4, seed=5)
    latents = encode_latents(vae, clips, "cpu", lambda e: None) * vae.config.scaling_factor
    kw = dict(guidance=5.0, steps=10, device="cpu", emit=lambda e: None)
    own = own_latents(unet, te, tok, sch, latents, list(clips.captions), seed=1, **kw)
    assert own.shape == latents.shape
    assert torch.equal(own, own_latents(unet, te, tok, sch, latents, list(clips.captions), seed=1, **kw))
    assert not torch.allclose(own, latents, atol=1e-3)

    def error():
        z = (own / vae.config.scaling_factor).permute(0, 2, 1, 3, 4).reshape(-1, *own.shape[1:2], *own.shape[3:])
        with torch.no_grad():
            return torch.nn.functional.mse_loss(vae.decode(z).sample, to_tensor(clips.pixels.reshape(-1, 32, 32, 3))).item()

    before = error()
    encoder = {k: v.clone() for k, v in vae.state_dict().items() if k.startswith(("encoder.", "quant_conv."))}
    refine_decoder(vae, own, latents, clips.pixels, steps=40, batch=8, device="cpu", seed=0, emit=lambda e: None)
    assert error() < 0.8 * before
    assert all(torch.equal(v, vae.state_dict()[k]) for k, v in encoder.items())  # the latent space stays


def test_resume_with_refine_steps_refines_only_the_decoder_once(base, tmp_path):
    import torch

    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    unet0, vae0 = (m.state_dict() for m in _components(copy)[:2])
    events = []
    cfg = dict(data="shapes", out=copy, preset="tiny", steps=20, batch=4, vae_steps=20, clips=16, device="cpu",
               resume=True, refine_steps=3, refine_clips=8)
    train(TrainConfig(**cfg), events.append)
    assert [e.step for e in events if e.phase == "refine"] == [1, 2, 3]
    assert [e.total for e in events if e.phase == "refine-sample"][-1] == 8
    unet1, vae1 = (m.state_dict() for m in _components(copy)[:2])
    assert all(torch.equal(unet0[k], unet1[k]) for k in unet0)
    assert all(torch.equal(vae0[k], vae1[k]) for k in vae0 if k.startswith(("encoder.", "quant_conv.")))
    assert not all(torch.equal(vae0[k], vae1[k]) for k in vae0 if k.startswith("decoder."))
    info = json.loads((copy / "t2v.json").read_text())["training"]
    assert info["refine_steps"] == 3 and info["refine_clips"] == 8  # the recipe is in the record
    events.clear()
    train(TrainConfig(**cfg), events.append)  # already refined that far: nothing to do
    assert not any(e.phase.startswith("refine") for e in events)


def test_refine_settings_are_checked(tmp_path):
    with pytest.raises(InvalidRequest, match="refine_steps"):
        TrainConfig(data="shapes", out=tmp_path / "o", refine_steps=-1)
    with pytest.raises(InvalidRequest, match="refine_clips"):
        TrainConfig(data="shapes", out=tmp_path / "o", refine_clips=0)


def test_frame_probabilities_spread_each_clips_weight_over_its_frames():
    import numpy as np

    from t2v.train.refine import frame_probabilities

    assert frame_probabilities(None, 4) is None
    p = frame_probabilities([0.5 / 2] * 2 + [0.5 / 6] * 6, 4)  # 2 new clips, 6 regularisation clips, 4 frames each
    assert p.shape == (32,) and np.isclose(p.sum(), 1) and np.isclose(p[:8].sum(), 0.5)
    assert np.allclose(p[:8], p[0]) and np.allclose(p[8:], p[8])
    with pytest.raises(ValueError, match="clip_weights"):
        frame_probabilities([0, 0], 4)


def test_refining_draws_frames_only_by_the_clip_weights(base):
    """A clip with weight 0 is never drawn: its frames are NaN, and the loss stays finite only if none is used."""
    import math

    import numpy as np

    from t2v.train.common import encode_latents
    from t2v.train.data import shapes_clips
    from t2v.train.refine import refine_decoder

    _, vae, *_ = _components(base)
    clips = shapes_clips(4, size=32, frames=4, seed=5)
    latents = encode_latents(vae, clips, "cpu", lambda e: None) * vae.config.scaling_factor
    pixels = clips.pixels.astype(np.float32)
    pixels[3] = np.nan
    kw = dict(steps=6, batch=8, device="cpu", seed=0, emit=lambda e: None)
    assert math.isfinite(refine_decoder(vae, latents, latents, pixels, clip_weights=[1, 1, 1, 0], **kw))
    assert math.isnan(refine_decoder(vae, latents, latents, pixels, **kw))  # uniform draws reach clip 3
