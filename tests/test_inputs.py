"""t2v.inputs: image-to-video's input image is checked before any model loads, and read once, hashed."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from t2v import inputs
from t2v.errors import InvalidRequest
from t2v.inputs import check_image, check_image_bytes, load_image


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(w: int, h: int, mode: str = "RGB") -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few bytes (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def refused(path_or_data, match: str):
    with pytest.raises(InvalidRequest, match=match) as e:
        if isinstance(path_or_data, bytes):
            check_image_bytes(path_or_data)
        else:
            check_image(path_or_data)
    assert e.value.field == "image" and str(e.value).startswith("image: ")
    return e.value


def test_png_with_alpha_loads_as_rgb_with_the_files_sha256(tmp_path):
    src = gradient(40, 24, "RGBA")
    path = tmp_path / "first.png"
    path.write_bytes(encode(src, "PNG"))
    got = load_image(path)
    assert (got.width, got.height, got.format) == (40, 24, "PNG")
    assert got.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert got.image.mode == "RGB" and got.image.size == (40, 24)
    assert np.array_equal(np.asarray(got.image), np.asarray(src.convert("RGB")))  # PNG is lossless
    info = check_image(str(path))
    assert (info.content_type, info.extension, info.size, info.sha256) == ("image/png", "png", path.stat().st_size,
                                                                           got.sha256)


def test_jpeg_is_turned_upright_by_its_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored 48x32, shown 32x48
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(gradient(48, 32), "JPEG", quality=95, exif=exif.tobytes()))
    got = load_image(path)
    assert (got.width, got.height, got.format) == (32, 48, "JPEG") and got.image.size == (32, 48)
    assert check_image(path).content_type == "image/jpeg"


def test_webp_is_accepted(tmp_path):
    info = check_image_bytes(encode(gradient(20, 20), "WEBP", lossless=True))
    assert (info.format, info.content_type, info.width, info.height) == ("WEBP", "image/webp", 20, 20)


def test_missing_folder_and_not_an_image(tmp_path):
    refused(tmp_path / "nope.png", "does not exist")
    refused(tmp_path, "is a folder")
    (tmp_path / "notes.png").write_text("not a picture at all")
    refused(tmp_path / "notes.png", "is not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    refused(tmp_path / "empty.png", "is empty")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_types_are_refused_naming_the_type(fmt):
    refused(encode(gradient(32, 32), fmt), f"is a {fmt} image; give a PNG, JPEG or WebP file")


def test_too_many_bytes(tmp_path, monkeypatch):
    data = encode(gradient(64, 64), "PNG")
    monkeypatch.setattr(inputs, "MAX_IMAGE_BYTES", len(data) - 1)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    refused(path, "the largest image accepted is")
    refused(data, "the largest image accepted is")


def test_too_many_pixels_is_refused_from_the_header_and_pillows_bomb_check_stays_on():
    limit = Image.MAX_IMAGE_PIXELS
    refused(png_header_only(4097, 4096), r"4097x4096 pixels; the largest image accepted is 4096x4096")
    refused(png_header_only(30000, 30000), "too many pixels")  # past Pillow's own limit: its DecompressionBombError
    assert Image.MAX_IMAGE_PIXELS == limit and limit is not None


def test_smaller_than_16_pixels_a_side():
    refused(encode(gradient(15, 64), "PNG"), "15x64 pixels; it must be at least 16x16")


def test_truncated_file_is_refused_before_any_job(tmp_path):
    data = encode(gradient(64, 64), "PNG")
    refused(data[: len(data) // 2], "damaged or truncated")
    jpeg = encode(gradient(64, 64), "JPEG")
    refused(jpeg[: len(jpeg) // 2], "damaged or truncated")


runner = CliRunner()


@pytest.mark.parametrize("command", ["generate", "plan"])
def test_cli_image_is_checked_before_any_model_loads(tmp_path, command):
    from t2v.cli.app import app

    # The model does not exist either: the image is checked first, so its message is the one shown.
    (tmp_path / "first.gif").write_bytes(encode(gradient(32, 32), "GIF"))
    for image, message in ((tmp_path / "missing.png", "does not exist"), (tmp_path / "first.gif", "GIF image")):
        result = runner.invoke(app, [command, "a cat", "--model", str(tmp_path / "no-model"), "--image", str(image),
                                     "-o", str(tmp_path / "out.mp4")])
        assert result.exit_code == 2, result.output
        assert message in result.output and "image:" in result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1  # one line
    assert not list(tmp_path.glob("out*"))


# -- videos: only the frames a job uses are decoded, into one array -----------------------------------------------


def _peak_bytes(fn) -> tuple[object, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["gif", "mp4"])
def test_video_to_video_decodes_only_the_frames_it_asks_for(tmp_path, kind):
    """A clip of 48 frames of 512x512: a video-to-video job of 8 frames decodes 8 (the peak is under 12 frames'
    worth), not all 48 (decoding the whole clip needs 48 frames' worth, and did in a list stacked into a copy)."""
    from t2v.export import decode_video
    from t2v.export.writers import write_video
    from tests.fixtures import gif_big_screen

    side, count, frame = 512, 48, 512 * 512 * 3
    path = tmp_path / f"clip.{kind}"
    if kind == "gif":
        path.write_bytes(gif_big_screen(side, count))
    else:
        rng = np.random.default_rng(0)
        write_video(rng.integers(0, 255, (count, side, side, 3), dtype=np.uint8), path, "mp4", 8)
    video, peak = _peak_bytes(lambda: inputs.load_video(path, width=64, height=64, num_frames=8))
    assert video.frames.shape == (8, 64, 64, 3) and video.source_frames == 8
    assert peak < 12 * frame, f"peak {peak / frame:.1f} frames' worth"
    (frames, _), whole = _peak_bytes(lambda: decode_video(path))
    assert frames.shape == (count, side, side, 3) and whole >= count * frame  # the file really holds them all
    assert whole < (count + 4) * frame, f"whole clip peak {whole / frame:.1f} frames' worth: held twice?"


def test_a_video_that_does_not_decode_is_named_without_its_folder(tmp_path):
    """On a server the clip is a file in the server's data folder: the message the caller sees names the file."""
    path = tmp_path / "assets" / "01ABC.mp4"
    path.parent.mkdir()
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    with pytest.raises(InvalidRequest) as e:
        inputs.load_video(path, width=32, height=32, num_frames=4)
    assert e.value.field == "video" and "01ABC.mp4 is not a readable video" in str(e.value)
    assert str(tmp_path) not in str(e.value)
