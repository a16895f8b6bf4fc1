"""t2v.post.upscale: exact output sizes, content preserved (PSNR after downscaling back), clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.post.upscale import lanczos, upscale


def smooth_frame(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    r = 0.5 + 0.4 * np.sin(2 * np.pi * x)
    g = 0.5 + 0.4 * np.cos(2 * np.pi * y)
    b = 0.5 + 0.3 * np.sin(2 * np.pi * (x + y))
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def roundtrip_psnr(frame: np.ndarray, up: np.ndarray) -> float:
    return psnr(lanczos(up, (frame.shape[1], frame.shape[0])), frame)


@pytest.mark.parametrize("scale", [2, 4])
def test_lanczos_size_content_and_progress(scale):
    frames = [smooth_frame(), smooth_frame()[::-1].copy()]
    calls = []
    out = upscale(frames, scale, on_frame=lambda done, total: calls.append((done, total)))
    assert [o.shape for o in out] == [(48 * scale, 64 * scale, 3)] * 2
    assert all(o.dtype == np.uint8 for o in out)
    assert min(roundtrip_psnr(f, o) for f, o in zip(frames, out)) > 30
    assert calls == [(1, 2), (2, 2)]


def test_accepts_a_4d_array_and_empty():
    clip = np.stack([smooth_frame()] * 3)
    assert [o.shape for o in upscale(clip, 2)] == [(96, 128, 3)] * 3
    assert upscale([], 2) == []


@pytest.mark.parametrize(("scale", "nearest"), [(3, "2"), (1, "2"), (8, "4"), (5, "4"), (0, "2")])
def test_bad_scale_names_the_nearest_valid(scale, nearest):
    with pytest.raises(InvalidRequest, match=f"nearest valid: {nearest}") as info:
        upscale([smooth_frame()], scale)
    assert info.value.field == "upscale"


def test_unknown_upscaler_names_the_nearest():
    with pytest.raises(InvalidRequest, match="nearest: 'realesrgan'") as info:
        upscale([smooth_frame()], 2, upscaler="realesgran")
    assert info.value.field == "upscaler"


def test_missing_weight_file(tmp_path):
    with pytest.raises(InvalidRequest, match="does not exist") as info:
        upscale([smooth_frame()], 2, upscaler=str(tmp_path / "nope.pth"))
    assert info.value.field == "upscaler"


def test_not_a_model_file(tmp_path):
    _spandrel_or_skip()
    bad = tmp_path / "notes.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InvalidRequest) as info:
        upscale([smooth_frame()], 2, upscaler=str(bad))
    assert info.value.field == "upscaler"


def test_bad_frame():
    with pytest.raises(InvalidRequest) as info:
        upscale([np.zeros((8, 8, 4), np.uint8)], 2)
    assert info.value.field == "frames"


def _realesrgan_or_skip():
    try:
        from t2v.post.upscale import _import_ncnn

        _import_ncnn()
    except InvalidRequest as exc:
        pytest.skip(f"realesrgan upscaler unavailable here: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["realesrgan", "realesrgan-anime"])
@pytest.mark.parametrize("scale", [2, 4])
def test_realesrgan(name, scale):
    _realesrgan_or_skip()
    frame = smooth_frame(48, 64)
    calls = []
    out = upscale([frame], scale, upscaler=name, on_frame=lambda d, t: calls.append((d, t)))
    assert out[0].shape == (48 * scale, 64 * scale, 3) and out[0].dtype == np.uint8
    # a GAN sharpens and re-draws texture, so the round trip is looser than Lanczos's; it still keeps the picture
    assert roundtrip_psnr(frame, out[0]) > 20
    assert calls == [(1, 1)]


def _spandrel_or_skip():
    try:
        from t2v.post.upscale import _import_spandrel

        return _import_spandrel()
    except InvalidRequest as exc:
        pytest.skip(f"spandrel loader unavailable here: {exc}")


def _tiny_esrgan(tmp_path, scale: int):
    """A randomly initialised, tiny ESRGAN (RRDBNet) saved as a plain state dict, as users' .pth files are."""
    spandrel, torch = _spandrel_or_skip()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(num_filters=8, num_blocks=1, scale=scale)
    path = tmp_path / f"tiny_x{scale}.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("scale", [2, 4])
def test_weight_file_through_spandrel(tmp_path, scale):
    path = _tiny_esrgan(tmp_path, 4)  # an x4 model asked for x2 is downscaled to the size asked for
    frame = smooth_frame(24, 32)
    out = upscale([frame, frame], scale, upscaler=str(path))
    assert [o.shape for o in out] == [(24 * scale, 32 * scale, 3)] * 2
    assert np.array_equal(out[0], out[1])


def test_weight_file_tiles_large_frames(tmp_path):
    from t2v.post import upscale as mod

    path = _tiny_esrgan(tmp_path, 2)
    model = mod.load_model(path)
    _, torch = mod._import_spandrel()
    x = torch.rand(1, 3, 40, 56)
    with torch.inference_mode():
        whole = model(x)
        tiled = mod._tiled(model, x, 2, tile=16, overlap=8)  # receptive field of the tiny net < 8 px
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-4)
