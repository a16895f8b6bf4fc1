"""Writers: real encodes of tiny clips, decoded back and checked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from t2v.errors import ExportError, OutputNotWritable
from t2v.export import writers
from t2v.export.writers import (
    EXTENSIONS,
    FORMATS,
    OutputFile,
    atomic_path,
    check_writable,
    decode_video,
    write_outputs,
    write_video,
)


def make_frames(n: int = 8, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth moving gradients plus a moving blob: realistic for encoders, not noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for t in range(n):
        cx, cy = w / 2 + w / 4 * np.cos(t / 3), h / 2 + h / 4 * np.sin(t / 3)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (0.05 * h * w))
        r = 0.6 * blob + 0.4 * (x / w)
        g = 0.5 + 0.4 * np.sin(x / 9 + t / 2)
        b = 0.5 + 0.4 * np.cos((x + y) / 13 - t / 3)
        frames.append(np.stack([r, g, b], axis=-1))
    return (np.clip(np.stack(frames), 0, 1) * 255).round().astype(np.uint8)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def listing(directory: Path) -> set[str]:
    return set(os.listdir(directory))


# --- encodes -----------------------------------------------------------------


def test_mp4_roundtrip_and_stream_properties(tmp_path: Path) -> None:
    frames = make_frames()
    out = write_video(frames, tmp_path / "clip.mp4", "mp4", 8)
    assert out.format == "mp4" and out.path == tmp_path / "clip.mp4"
    decoded, fps = decode_video(out.path)
    assert decoded.shape == frames.shape
    assert fps == pytest.approx(8.0)
    assert mean_abs_diff(decoded, frames) < 8
    with av.open(str(out.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.profile == "High"
        assert stream.frames in (0, len(frames))
    data = out.path.read_bytes()
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    assert 0 < moov < mdat, "faststart: moov must precede mdat"
    assert listing(tmp_path) == {"clip.mp4"}


def test_mp4_non_integer_fps_and_crf(tmp_path: Path) -> None:
    frames = make_frames(n=6)
    fps = 24000 / 1001
    hi = write_video(frames, tmp_path / "hi.mp4", "mp4", fps, crf=10)
    lo = write_video(frames, tmp_path / "lo.mp4", "mp4", fps, crf=40)
    decoded, got_fps = decode_video(hi.path)
    assert len(decoded) == 6
    assert got_fps == pytest.approx(fps, abs=1e-3)
    assert lo.bytes < hi.bytes
    assert mean_abs_diff(decoded, frames) < mean_abs_diff(decode_video(lo.path)[0], frames)


def test_webm_roundtrip(tmp_path: Path) -> None:
    frames = make_frames()
    out = write_video(frames, tmp_path / "clip.webm", "webm", 12)
    decoded, fps = decode_video(out.path)
    assert decoded.shape == frames.shape
    assert fps == pytest.approx(12.0)
    assert mean_abs_diff(decoded, frames) < 10
    with av.open(str(out.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9"
        assert container.format.name.startswith("matroska")
    assert listing(tmp_path) == {"clip.webm"}


def test_gif_roundtrip(tmp_path: Path) -> None:
    frames = make_frames()
    out = write_video(frames, tmp_path / "clip.gif", "gif", 10)
    decoded, fps = decode_video(out.path)
    assert decoded.shape == frames.shape
    assert fps == pytest.approx(10.0)
    assert mean_abs_diff(decoded, frames) < 12
    with Image.open(out.path) as im:
        assert im.format == "GIF" and im.n_frames == len(frames) and im.size == (64, 48)
        assert im.info.get("loop") == 0


def test_a_gif_whose_frames_grow_the_canvas_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    import resource

    from tests.fixtures import gif_reaching_out

    path = tmp_path / "bomb.gif"
    path.write_bytes(gif_reaching_out(12000))  # 2 KB; the canvas Pillow would grow for its frames is 12000 pixels wide
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ExportError, match=r"frame 2 is 12000x16 pixels, the first 16x16"):
        decode_video(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing near a canvas per frame


def test_png_directory_is_pixel_exact(tmp_path: Path) -> None:
    frames = make_frames(n=5)
    out = write_video(frames, tmp_path / "clip_frames", "png", 8)
    assert out.path.is_dir()
    files = sorted(out.path.iterdir())
    assert [f.name for f in files] == [f"frame_{i:05d}.png" for i in range(5)]
    for i, f in enumerate(files):
        with Image.open(f) as im:
            assert im.size == (64, 48) and im.mode == "RGB"
            assert np.array_equal(np.asarray(im), frames[i])
    assert out.bytes == sum(f.stat().st_size for f in files)
    assert out.sha256 == hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    assert out.to_dict()["file"] == "clip_frames"


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_output_file_matches_disk(tmp_path: Path, fmt: str) -> None:
    out = write_video(make_frames(n=4), tmp_path / f"c{EXTENSIONS[fmt]}", fmt, 8)
    data = out.path.read_bytes()
    assert out.bytes == len(data)
    assert out.sha256 == hashlib.sha256(data).hexdigest()
    assert out.to_dict() == {"format": fmt, "file": f"c{EXTENSIONS[fmt]}", "bytes": len(data), "sha256": out.sha256}


def test_overwrites_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    write_video(make_frames(n=3), target, "mp4", 8)
    assert target.read_bytes()[4:8] == b"ftyp"
    assert listing(tmp_path) == {"clip.mp4"}


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "fmt", "fps", "needle"),
    [
        (make_frames(n=2), "avi", 8, "unknown output format"),
        (make_frames(n=2).astype(np.float32) / 255, "mp4", 8, "uint8"),
        (make_frames(n=2)[..., :2], "mp4", 8, "shape"),
        (make_frames(n=2)[0], "mp4", 8, "shape"),
        (make_frames(n=2, w=63), "mp4", 8, "even"),
        (make_frames(n=2, h=47), "webm", 8, "even"),
        (np.zeros((0, 48, 64, 3), np.uint8), "mp4", 8, "no frames"),
        (make_frames(n=2), "mp4", 0, "fps"),
        (make_frames(n=2), "gif", -1.0, "fps"),
        (make_frames(n=2), "mp4", float("nan"), "fps"),
    ],
)
def test_validation_errors(tmp_path: Path, frames: np.ndarray, fmt: str, fps: float, needle: str) -> None:
    with pytest.raises(ExportError, match=needle):
        write_video(frames, tmp_path / "x.out", fmt, fps)
    assert listing(tmp_path) == set()


def test_odd_size_is_fine_for_gif_and_png(tmp_path: Path) -> None:
    frames = make_frames(n=2, h=47, w=63)
    write_video(frames, tmp_path / "a.gif", "gif", 8)
    write_video(frames, tmp_path / "a_frames", "png", 8)


# --- atomicity ---------------------------------------------------------------


def _fail_after(monkeypatch: pytest.MonkeyPatch, name: str, count: int, exc: BaseException) -> None:
    original = getattr(writers, name)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        if calls["n"] >= count:
            raise exc
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(writers, name, flaky)


@pytest.mark.parametrize(
    ("fmt", "hook"), [("mp4", "_mux_frame"), ("webm", "_mux_frame"), ("png", "_save_png_frame")]
)
def test_failure_mid_encode_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, hook: str) -> None:
    _fail_after(monkeypatch, hook, 3, RuntimeError("disk on fire"))
    target = tmp_path / f"clip{EXTENSIONS[fmt]}"
    with pytest.raises(ExportError, match=f"writing {target.name} failed: disk on fire") as info:
        write_video(make_frames(), target, fmt, 8)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert listing(tmp_path) == set()


@pytest.mark.parametrize(("fmt", "hook"), [("mp4", "_mux_frame"), ("png", "_save_png_frame")])
def test_keyboard_interrupt_propagates_and_cleans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, hook: str
) -> None:
    _fail_after(monkeypatch, hook, 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        write_video(make_frames(), tmp_path / f"clip{EXTENSIONS[fmt]}", fmt, 8)
    assert listing(tmp_path) == set()


def test_failure_keeps_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous run")
    _fail_after(monkeypatch, "_mux_frame", 1, OSError(28, "No space left on device"))
    with pytest.raises(ExportError, match="No space left"):
        write_video(make_frames(), target, "mp4", 8)
    assert target.read_bytes() == b"previous run"
    assert listing(tmp_path) == {"clip.mp4"}


def test_gif_failure_after_partial_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def partial(frames, tmp, fps, comment):
        Path(tmp).write_bytes(b"GIF89a partial")
        raise ValueError("palette exploded")

    monkeypatch.setattr(writers, "_encode_gif", partial)
    with pytest.raises(ExportError, match="palette exploded"):
        write_video(make_frames(), tmp_path / "clip.gif", "gif", 8)
    assert listing(tmp_path) == set()


def test_atomic_path_directory_and_interrupt(tmp_path: Path) -> None:
    final = tmp_path / "d"
    final.mkdir()
    (final / "stale.txt").write_text("x")
    with atomic_path(final, is_dir=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".part")
        tmp.mkdir()
        (tmp / "new.txt").write_text("y")
    assert sorted(os.listdir(final)) == ["new.txt"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert listing(tmp_path) == {"d"}


# --- write_outputs -----------------------------------------------------------


def test_write_outputs_all_formats_dedup_and_callback(tmp_path: Path) -> None:
    seen: list[OutputFile] = []
    stem = tmp_path / "nested" / "out" / "panda"
    outs = write_outputs(make_frames(n=4), stem, ["mp4", "gif", "mp4", "png", "webm"], 8, on_file=seen.append)
    assert [o.format for o in outs] == ["mp4", "gif", "png", "webm"]
    assert seen == outs
    assert listing(stem.parent) == {"panda.mp4", "panda.gif", "panda_frames", "panda.webm"}
    assert set(FORMATS) == {o.format for o in outs}


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt()])
def test_write_outputs_failure_removes_earlier_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    def broken(frames, tmp, fps, comment):
        raise exc

    monkeypatch.setattr(writers, "_encode_gif", broken)
    seen: list[OutputFile] = []
    expected = ExportError if isinstance(exc, Exception) else KeyboardInterrupt
    with pytest.raises(expected):
        write_outputs(make_frames(n=4), tmp_path / "panda", ["mp4", "png", "gif"], 8, on_file=seen.append)
    assert [o.format for o in seen] == ["mp4", "png"]
    assert listing(tmp_path) == set()


def test_write_outputs_rejects_unknown_format_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown output format 'mkv'"):
        write_outputs(make_frames(n=2), tmp_path / "p", ["mp4", "mkv"], 8)
    assert listing(tmp_path) == set()


# --- check_writable ----------------------------------------------------------


def test_check_writable_creates_missing_nested_dir(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    check_writable(target)
    assert target.is_dir()
    assert listing(target) == set()  # the probe file is gone


def test_check_writable_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a dir")
    target = blocker / "out"
    with pytest.raises(OutputNotWritable) as info:
        check_writable(target)
    message = str(info.value)
    assert str(target) in message and "\n" not in message
    assert isinstance(info.value, ExportError)


def test_check_writable_path_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritable, match="file.txt"):
        check_writable(blocker)


def test_write_outputs_unwritable_stem(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputNotWritable):
        write_outputs(make_frames(n=2), tmp_path / "f" / "panda", ["mp4"], 8)
