"""Training on the tiny preset: the loss falls, checkpoints resume, the output folder is a working model.

Adds about a minute: the loss must really fall, so the tiny model is trained for real (30 steps: the mean loss of
the last ten is about 0.6 of the first ten's), and resumed from its checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.train.trainer import TrainConfig, train


def _run(out, **kw):
    losses = {}
    events = []

    def on_event(e):
        events.append(e)
        if e.phase == "unet" and e.loss is not None:  # (the "resumed from" event has no loss)
            losses[e.step] = e.loss

    cfg = dict(data="shapes", out=out, preset="tiny", steps=30, batch=4, lr=2e-3, warmup=5, vae_steps=20,
               checkpoint_every=15, preview_every=30, clips=32, device="cpu")
    cfg.update(kw)
    train(TrainConfig(**cfg), on_event)
    return losses, events


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "model"
    losses, events = _run(out)
    return out, losses, events


def test_loss_decreases(trained):
    _, losses, _ = trained
    first = np.mean([losses[s] for s in range(1, 11)])
    last = np.mean([losses[s] for s in range(21, 31)])
    assert last < 0.8 * first, (first, last)


def test_writes_a_model_checkpoints_preview_and_log(trained):
    out, _, events = trained
    for part in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler", "t2v.json"):
        assert (out / part).exists(), part
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["step-000015.pt", "step-000030.pt"]
    assert (out / "previews" / "step-000030.mp4").stat().st_size > 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30]
    meta = json.loads((out / "t2v.json").read_text())
    assert meta["training"]["steps"] == 30 and meta["defaults"]["width"] == 32
    assert meta["training"]["temporal_positions"] is True
    # frame-position embeddings are on by default, recorded where the loader finds them
    assert json.loads((out / "unet" / "config.json").read_text())["_t2v_temporal_positions"] == 512
    assert [e.phase for e in events][-1] == "done"


def test_trained_folder_generates_through_the_engine(trained):
    from t2v import GenerationRequest, generate  # the public API, also after t2v.generation was imported

    out, _, _ = trained
    r = generate(GenerationRequest(prompt="a red circle moving right", model=str(out), seed=1, formats=()))
    assert r.frames.shape == (4, 32, 32, 3)
    assert r.record["negative_prompt"] == ""


def test_resume_continues_from_the_newest_checkpoint(trained, tmp_path):
    import shutil

    out, _, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with pytest.raises(InvalidRequest, match="already holds a training run"):
        _run(copy, steps=35)
    losses, events = _run(copy, steps=35, resume=True)
    assert min(losses) == 31 and max(losses) == 35
    assert any("resumed from step 30" in e.message for e in events)
    assert not any(e.phase == "vae" for e in events)  # the autoencoder is not retrained
    assert (copy / "checkpoints" / "step-000035.pt").exists()


def test_resume_with_decoder_steps_tunes_only_the_decoder(trained, tmp_path):
    import shutil

    import torch
    from diffusers import AutoencoderKL

    out, _, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = AutoencoderKL.from_pretrained(copy / "vae").state_dict()
    with pytest.raises(InvalidRequest, match="trained with 'v_prediction'"):  # a resume keeps the run's objective
        _run(copy, resume=True, prediction="epsilon")
    with pytest.raises(InvalidRequest, match="frame-position embeddings"):  # ... and its architecture
        _run(copy, resume=True, temporal_positions=False)
    _, events = _run(copy, resume=True, decoder_steps=5)
    after = AutoencoderKL.from_pretrained(copy / "vae").state_dict()
    assert [e.step for e in events if e.phase == "decoder"] == [1, 2, 3, 4, 5]
    assert not any(e.phase == "vae" or (e.phase == "unet" and e.loss is not None) for e in events)  # nothing else trains
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "quant_conv.")))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert json.loads((copy / "t2v.json").read_text())["training"]["decoder_steps"] == 5
    for part in ("vae", "unet", "text_encoder"):  # the VAE was loaded from this machine's path: not kept
        assert "_name_or_path" not in json.loads((copy / part / "config.json").read_text()), part


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(InvalidRequest, match="data"):
        TrainConfig(data=str(tmp_path / "nope"), out=tmp_path / "o")
    with pytest.raises(InvalidRequest, match="preset"):
        TrainConfig(data="shapes", out=tmp_path / "o", preset="huge")
    with pytest.raises(InvalidRequest, match="steps"):
        TrainConfig(data="shapes", out=tmp_path / "o", steps=0)
    with pytest.raises(InvalidRequest, match="prediction"):
        TrainConfig(data="shapes", out=tmp_path / "o", prediction="x0")
    with pytest.raises(InvalidRequest, match="high_noise_share"):
        TrainConfig(data="shapes", out=tmp_path / "o", high_noise_share=1.5)
    with pytest.raises(InvalidRequest, match="high_noise_from"):
        TrainConfig(data="shapes", out=tmp_path / "o", high_noise_from=1.0)
    for bad in (-0.1, 1.0):
        with pytest.raises(InvalidRequest, match="vae_jitter: .*nearest valid: 0.15"):
            TrainConfig(data="shapes", out=tmp_path / "o", vae_jitter=bad)


def test_high_noise_share_moves_that_share_of_timesteps_to_the_noisy_end():
    import torch

    from t2v.train.common import sample_timesteps

    torch.manual_seed(0)
    uniform = sample_timesteps(20000, 1000, "cpu")
    torch.manual_seed(0)
    biased = sample_timesteps(20000, 1000, "cpu", high_share=0.5, high_from=0.8)
    assert uniform.min() >= 0 and uniform.max() <= 999 and biased.min() >= 0 and biased.max() <= 999
    top_uniform = float((uniform >= 800).float().mean())
    top_biased = float((biased >= 800).float().mean())
    assert abs(top_uniform - 0.2) < 0.02
    assert abs(top_biased - (0.5 + 0.5 * 0.2)) < 0.02  # half forced high, the other half uniform
    torch.manual_seed(0)
    assert torch.equal(sample_timesteps(64, 1000, "cpu", high_share=0.0), uniform[:64])  # 0 keeps the old draws


def test_trained_model_ships_a_zero_terminal_snr_v_prediction_schedule(trained):
    from diffusers import DDIMScheduler

    out, _, _ = trained
    sched = DDIMScheduler.from_pretrained(out / "scheduler")
    assert sched.config.prediction_type == "v_prediction" and sched.config.timestep_spacing == "trailing"
    assert float(sched.alphas_cumprod[-1]) == 0.0  # the last noise level keeps nothing of the clip
    sched.set_timesteps(25)
    assert int(sched.timesteps[0]) == 999  # sampling starts from that pure-noise level


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
def test_diffusion_loss_is_zero_for_the_exact_target_and_not_for_the_other(prediction):
    import torch
    from diffusers import DDIMScheduler

    from t2v.train.common import diffusion_loss
    from t2v.train.trainer import configure_scheduler

    sched = configure_scheduler(DDIMScheduler(), prediction)
    latents = torch.randn(3, 4, 2, 4, 4)
    torch.manual_seed(5)  # diffusion_loss draws noise then timesteps; replay the same draws
    noise = torch.randn_like(latents)
    t = torch.randint(0, 1000, (3,))
    exact = sched.get_velocity(latents, noise, t) if prediction == "v_prediction" else noise
    other = noise if prediction == "v_prediction" else sched.get_velocity(latents, noise, t)

    class Oracle:
        def __init__(self, out):
            self.out = out

        def __call__(self, *args, **kwargs):
            return type("Out", (), {"sample": self.out})

    torch.manual_seed(5)
    assert float(diffusion_loss(Oracle(exact), None, latents, sched)) < 1e-10
    torch.manual_seed(5)
    assert float(diffusion_loss(Oracle(other), None, latents, sched)) > 0.01


def test_autoencoder_sees_random_colours_beside_shapes_data(tmp_path):
    from t2v.train.data import shapes_clips
    from t2v.train.trainer import vae_frames

    clips = shapes_clips(8, size=32, frames=4, seed=0)
    pools = vae_frames(clips, TrainConfig(data="shapes", out=tmp_path / "o", preset="tiny", clips=8))
    assert [p.shape for p in pools] == [(32, 32, 32, 3), (16, 32, 32, 3)]
    folder = tmp_path / "data"
    folder.mkdir()
    assert len(vae_frames(clips, TrainConfig(data=str(folder), out=tmp_path / "o", preset="tiny"))) == 1


@pytest.mark.gpu
def test_trains_on_cuda_with_bf16_autocast(tmp_path):
    from t2v.train.common import pick_device

    device, amp = pick_device("auto")
    assert device == "cuda"
    losses, _ = _run(tmp_path / "gpu", steps=20, device="cuda")
    assert len(losses) == 20 and all(np.isfinite(v) for v in losses.values())


def test_frozen_text_encoder_keeps_its_weights_while_the_unet_trains(tmp_path):
    import torch
    from diffusers import UNet3DConditionModel
    from transformers import CLIPTextModel

    out = tmp_path / "frozen"
    _run(out, steps=2, checkpoint_every=2, preview_every=2, train_text_encoder=False, vae_steps=2)
    te1, unet1 = CLIPTextModel.from_pretrained(out / "text_encoder").state_dict(), UNet3DConditionModel.from_pretrained(out / "unet").state_dict()
    _run(out, steps=4, checkpoint_every=2, preview_every=2, train_text_encoder=False, resume=True, vae_steps=2)
    te2, unet2 = CLIPTextModel.from_pretrained(out / "text_encoder").state_dict(), UNet3DConditionModel.from_pretrained(out / "unet").state_dict()
    assert all(torch.equal(te1[k], te2[k]) for k in te1)
    assert not all(torch.equal(unet1[k], unet2[k]) for k in unet1)
    assert json.loads((out / "t2v.json").read_text())["training"]["train_text_encoder"] is False


def test_amplitude_jitter_scales_each_frame_about_the_background_latent():
    import torch

    from t2v.train.common import jitter_amplitude

    background = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 4, 1, 1)
    # offsets away from 0, where the recovered factor (out - background) / d would be rounding noise
    d = (torch.rand(16, 4, 8, 8, generator=torch.Generator().manual_seed(1)) + 0.5) * torch.tensor([1.0, -1.0]).repeat(8)[
        :, None, None, None]
    z = background + d
    assert torch.equal(jitter_amplitude(z, background, 0.0, torch.Generator().manual_seed(0)), z)
    out = jitter_amplitude(z, background, 0.2, torch.Generator().manual_seed(0))
    scale = ((out - background) / d).flatten(1)  # one factor per frame, the same for every element of it
    assert torch.allclose(scale, scale[:, :1].expand_as(scale), atol=1e-4)
    assert float(scale.min()) >= 0.8 - 1e-5 and float(scale.max()) <= 1.2 + 1e-5 and float(scale.std()) > 0.02


def test_vae_jitter_trains_another_autoencoder_and_is_recorded(tmp_path):
    import torch
    from diffusers import AutoencoderKL

    from t2v.train.common import background_latent

    plain, jittered = tmp_path / "plain", tmp_path / "jittered"
    _run(plain, steps=1, checkpoint_every=1, preview_every=1, vae_steps=5)
    _, events = _run(jittered, steps=1, checkpoint_every=1, preview_every=1, vae_steps=5, vae_jitter=0.15)
    a = AutoencoderKL.from_pretrained(plain / "vae")
    b = AutoencoderKL.from_pretrained(jittered / "vae")
    assert [e.step for e in events if e.phase == "vae"][-1] == 5
    assert not all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    bg = background_latent(b, "cpu")
    assert bg.shape == (1, 4, 1, 1) and torch.isfinite(bg).all()
    assert json.loads((jittered / "t2v.json").read_text())["training"]["vae_jitter"] == 0.15


def test_init_starts_from_a_trained_model_with_clip_attention(trained, tmp_path):
    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel

    from t2v import GenerationRequest, generate
    from t2v.models.temporal import CLIP_ATTENTION_KEY

    base, _, _ = trained
    out = tmp_path / "ft"
    losses, events = _run(out, steps=6, checkpoint_every=3, preview_every=6, init=str(base), clip_attention=True)
    assert not any(e.phase == "vae" for e in events)  # the base's autoencoder is kept, not retrained
    a, b = AutoencoderKL.from_pretrained(base / "vae").state_dict(), AutoencoderKL.from_pretrained(out / "vae").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "unet" / "config.json").read_text())[CLIP_ATTENTION_KEY] is True
    info = json.loads((out / "t2v.json").read_text())["training"]
    assert info["clip_attention"] is True and info["init"]["steps"] == 30 and info["steps"] == 6
    # The run started from the base's UNet: its first losses are the trained model's, far below a new model's.
    fresh, _ = _run(tmp_path / "fresh", steps=1, checkpoint_every=1, preview_every=1, vae_steps=1)
    assert losses[1] < fresh[1]
    r = generate(GenerationRequest(prompt="a red circle moving right", model=str(out), seed=1, formats=()))
    assert r.frames.shape == (4, 32, 32, 3)
    assert UNet3DConditionModel.load_config(out / "unet")[CLIP_ATTENTION_KEY] is True
    with pytest.raises(InvalidRequest, match="clip-wide attention; it cannot be removed"):
        _run(out, steps=8, resume=True, init=str(base))
    with pytest.raises(InvalidRequest, match="clip_attention: .* was trained with it; pass --clip-attention"):
        _run(tmp_path / "again", steps=2, init=str(out))  # starting from it needs it too


def test_init_from_a_folder_that_is_not_a_trained_model_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequest, match=r"init: .* is not a model folder t2v train wrote \(missing unet") as e:
        TrainConfig(data="shapes", out=tmp_path / "o", init=str(tmp_path / "empty"))
    assert e.value.field == "init"


def test_several_clip_lengths_train_together_and_the_first_is_the_default(trained, tmp_path):
    from t2v import GenerationRequest, generate
    from t2v.train.data import load_clip_sets, load_clips

    base, _, _ = trained
    out = tmp_path / "long"
    frames_seen = []
    _, events = _run(out, steps=6, checkpoint_every=3, preview_every=6, init=str(base), clips=12, frames=(4, 6),
                     modifiers=0.5)
    assert any("6 clips of 4 frames + 6 clips of 6 frames" in (e.message or "") for e in events if e.phase == "data")
    info = json.loads((out / "t2v.json").read_text())
    assert info["training"]["frames"] == [4, 6] and info["training"]["modifiers"] == 0.5
    assert info["defaults"]["num_frames"] == 4
    for n in (None, 6):
        r = generate(GenerationRequest(prompt="a small red circle moving right quickly", model=str(out), seed=1,
                                       formats=(), num_frames=n))
        frames_seen.append(r.frames.shape[0])
    assert frames_seen == [4, 6]
    # one length is exactly the single-length data set; a second one draws other clips
    one, = load_clip_sets("shapes", size=32, frames=(4,), count=5, seed=2)
    assert np.array_equal(one.pixels, load_clips("shapes", size=32, frames=4, count=5, seed=2).pixels)
    a, b = load_clip_sets("shapes", size=32, frames=(4, 6), count=5, seed=2)
    assert (len(a), len(b)) == (3, 2) and b.pixels.shape[1] == 6
    for bad in ((1,), (8, 8), (80,)):
        with pytest.raises(InvalidRequest, match="frames: .* must be distinct lengths from 2 to 64"):
            TrainConfig(data="shapes", out=tmp_path / "o", frames=bad)
