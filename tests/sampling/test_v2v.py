"""Video-to-video (SDEdit, ``video`` + ``strength``) on the tiny ModelScope, Wan, AnimateDiff, HunyuanVideo,
CogVideoX and LTX-Video models: strength 0 is the
VAE round trip of the input, more strength changes more, the record names the input, replay and resume give
the same frames, and bad input exits 2 naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.errors import InvalidRequest
from t2v.export import sha256_file, write_video
from t2v import generate
from t2v.inputs import fit_frames
from t2v.requests import GenerationRequest
from tests.families.checks import assert_resume_after_cancel_is_bitwise

PROMPT = "a red ball bouncing on a beach"
FAMILIES = ["modelscope", "wan", "animatediff", "hunyuan", "cogvideox", "ltx", "ltx-097"]  # ltx-097: LTXConditionPipeline
VIDEO_VAES = {"wan": "AutoencoderKLWan", "hunyuan": "AutoencoderKLHunyuanVideo", "cogvideox": "AutoencoderKLCogVideoX",
              "ltx": "AutoencoderKLLTXVideo", "ltx-097": "AutoencoderKLLTXVideo"}
runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame 80x48 MP4 of moving gradients (more frames and another size than the runs ask for)."""
    yy, xx = np.mgrid[0:48, 0:80]
    frames = np.stack([np.stack([(xx * 3 + i * 10) % 256, (yy * 5) % 256, ((xx + yy) * 2 + i) % 256], -1)
                       for i in range(12)]).astype(np.uint8)
    path = tmp_path_factory.mktemp("clips") / "in.mp4"
    write_video(frames, path, "mp4", 8, crf=8)
    return path


@pytest.fixture(scope="module")
def models(tiny_model, tmp_path_factory):
    """A tiny model of each family that takes a video, by family name."""
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("v2v-models")
    return {"modelscope": tiny_model, **{kind: make_tiny_model(kind, root / kind, seed=0) for kind in FAMILIES[1:]}}


def v2v(model, clip, **fields):
    kw = {k: fields.pop(k) for k in ("should_cancel", "checkpoint", "on_progress") if k in fields}
    fields = {"prompt": PROMPT, "seed": 5, "formats": (), **fields}
    return generate(GenerationRequest(model=str(model), video=str(clip), **fields), **kw)


def round_trip(model, family: str, frames: np.ndarray, seed: int) -> np.ndarray:
    """The frames through the model's VAE directly (encode, the latent distribution's mode, decode), uint8."""
    import torch
    import diffusers

    x = torch.from_numpy(frames).float().div(127.5).sub(1).permute(3, 0, 1, 2)  # (3, F, H, W)
    with torch.inference_mode():
        if family in VIDEO_VAES:  # video VAEs: the whole clip at once
            vae = getattr(diffusers, VIDEO_VAES[family]).from_pretrained(model, subfolder="vae")
            at = {"temb": torch.tensor([0.0])} if getattr(vae.config, "timestep_conditioning", False) else {}
            z = vae.encode(x[None]).latent_dist.mode()
            torch.manual_seed(seed)  # LTX-Video 0.9.1's decoder injects noise from torch's global RNG (t2v seeds it)
            out = vae.decode(z, **at).sample[0].permute(1, 2, 3, 0)
        else:
            vae = diffusers.AutoencoderKL.from_pretrained(model, subfolder="vae")
            out = vae.decode(vae.encode(x.permute(1, 0, 2, 3)).latent_dist.mode()).sample.permute(0, 2, 3, 1)
    return np.clip(np.round((out.float() / 2 + 0.5).clamp(0, 1).numpy() * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("family", FAMILIES)
def test_strength_0_is_the_vae_round_trip(models, clip, family):
    from t2v.export import decode_video

    model = models[family]
    # LTX-Video 0.9.1+: decode at timestep 0 without decode noise, as the direct decode below.
    ltx = {"decode_timestep": 0.0, "decode_noise_scale": 0.0} if family.startswith("ltx") else {}
    result = v2v(model, clip, strength=0.0, **ltx)
    r = result.request
    expected = round_trip(model, family, fit_frames(decode_video(clip)[0], width=r.width, height=r.height,
                                                    num_frames=r.num_frames), r.seed)
    assert result.frames.shape == expected.shape == (r.num_frames, r.height, r.width, 3)
    assert np.abs(result.frames.astype(int) - expected.astype(int)).max() <= 2
    assert result.record["video_sha256"] == sha256_file(clip) and result.record["strength"] == 0.0


def test_more_strength_changes_more_and_1_is_text_to_video(clip):
    """On the shipped t2v-shapes model (real output, ModelScope's UNet3D): the change from the input grows with
    the strength, and strength 1 is text-to-video (the input noised to DDIM's first timestep is all but noise)."""
    base = v2v("t2v-shapes", clip, strength=0.0).frames.astype(int)
    runs = {s: v2v("t2v-shapes", clip, strength=s, num_inference_steps=8).frames.astype(int) for s in (0.3, 0.9, 1.0)}
    diffs = {s: np.abs(f - base).mean() for s, f in runs.items()}
    assert 1 < diffs[0.3] < diffs[0.9]
    t2v = generate(GenerationRequest(model="t2v-shapes", prompt=PROMPT, seed=5, formats=(), num_inference_steps=8))
    assert t2v.frames.shape == runs[1.0].shape
    assert np.abs(t2v.frames.astype(int) - runs[1.0]).mean() < 1 < diffs[0.3]


def test_record_replay_and_default_strength(tiny_model, clip, tmp_path):
    out = tmp_path / "v2v.mp4"
    made = runner.invoke(app, ["generate", PROMPT, "--model", str(tiny_model), "--video", str(clip), "--steps", "3",
                               "--seed", "2", "-o", str(out), "--quiet"])
    assert made.exit_code == 0, made.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["video"] == str(clip) and record["strength"] == 0.6  # the default with a video
    assert record["video_sha256"] == sha256_file(clip)
    replayed = runner.invoke(app, ["replay", str(out.with_suffix(".json")), "-o", str(tmp_path / "again.mp4"),
                                   "--strict"])
    assert replayed.exit_code == 0, replayed.output
    assert "identical frames" in replayed.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_after_cancel_is_bitwise(models, clip, tmp_path, family):
    model = models[family]

    def run(*args, **fields):
        result = v2v(model, clip, strength=0.7, num_inference_steps=4, **fields)
        return result.frames, result

    spec = assert_resume_after_cancel_is_bitwise(run, tmp_path, 1)
    # The checkpoint is of this input: another clip at the same path starts afresh.
    other = tmp_path / "other.mp4"
    write_video(np.zeros((4, 48, 80, 3), np.uint8), other, "mp4", 8)
    clip_bytes = clip.read_bytes()
    try:
        clip.write_bytes(other.read_bytes())
        assert run(checkpoint=spec)[1].record.get("resumed_from_step") is None
    finally:
        clip.write_bytes(clip_bytes)


@pytest.mark.parametrize(("args", "field"), [
    (["--video", "/nonexistent/in.mp4"], "video"),
    (["--strength", "0.5"], "strength"),
    (["--video", "{clip}", "--strength", "1.5"], "strength"),
    (["--video", "{junk}"], "video"),
    (["--video", "{clip}", "--image", "{image}"], "video"),
])
def test_bad_input_exits_2_naming_the_field(tiny_model, clip, tmp_path, args, field):
    from PIL import Image

    junk, image = tmp_path / "junk.mp4", tmp_path / "first.png"
    junk.write_bytes(b"not a video at all")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(image)
    args = [a.format(clip=clip, junk=junk, image=image) for a in args]
    result = runner.invoke(app, ["generate", PROMPT, "--model", str(tiny_model), "--steps", "1", "--quiet", *args,
                                 "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert not (tmp_path / "x.mp4").exists()


def test_models_that_cannot_encode_refuse_video_and_the_api_refuses_paths(clip, tmp_path):
    from t2v.families import get_family
    from t2v.service.limits import admit
    from t2v.settings import get_settings

    request = GenerationRequest(prompt=PROMPT, video=str(clip))
    with pytest.raises(InvalidRequest, match="animatediff, cogvideox, hunyuan, ltx, modelscope, wan") as e:
        get_family("sd").check(request, None)  # text-to-image
    assert e.value.field == "video"
    with pytest.raises(InvalidRequest) as e:
        admit(request, get_settings())
    assert e.value.field == "video"
