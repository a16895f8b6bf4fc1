"""Embedded records, sidecars and hashes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from t2v.errors import ExportError
from t2v.export import (
    EXTENSIONS,
    frames_sha256,
    read_embedded,
    sha256_file,
    write_outputs,
    write_sidecar,
    write_video,
)

RECORD = {
    "prompt": "café ☕ — a panda eating bamboo",
    "seed": 1234,
    "steps": 25,
    "guidance": 7.5,
    "nested": {"model": "tiny", "tags": ["a", "ü"]},
}


def make_frames(n: int = 4, h: int = 32, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = [
        np.stack([(x / w + t / n) % 1.0, y / h, 0.5 + 0.4 * np.sin((x + y) / 7 + t)], axis=-1) for t in range(n)
    ]
    return (np.clip(np.stack(frames), 0, 1) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif", "png"])
def test_embedded_record_roundtrips(tmp_path: Path, fmt: str) -> None:
    out = write_video(make_frames(), tmp_path / f"clip{EXTENSIONS[fmt]}", fmt, 8, metadata=RECORD)
    assert read_embedded(out.path) == RECORD


def test_png_single_frame_and_all_frames_carry_record(tmp_path: Path) -> None:
    out = write_video(make_frames(n=3), tmp_path / "clip_frames", "png", 8, metadata=RECORD)
    for f in sorted(out.path.iterdir()):
        assert read_embedded(f) == RECORD


def test_write_outputs_embeds_in_every_format(tmp_path: Path) -> None:
    outs = write_outputs(make_frames(), tmp_path / "run", ["mp4", "webm", "gif", "png"], 8, metadata=RECORD)
    assert [read_embedded(o.path) for o in outs] == [RECORD] * 4


def test_read_embedded_errors(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such file"):
        read_embedded(tmp_path / "missing.mp4")
    bare = write_video(make_frames(), tmp_path / "bare.mp4", "mp4", 8)
    with pytest.raises(ExportError, match="no embedded t2v record"):
        read_embedded(bare.path)
    bare_gif = write_video(make_frames(), tmp_path / "bare.gif", "gif", 8)
    with pytest.raises(ExportError, match="no embedded t2v record"):
        read_embedded(bare_gif.path)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video at all" * 10)
    with pytest.raises(ExportError, match="cannot open"):
        read_embedded(garbage)
    empty_dir = tmp_path / "empty_frames"
    empty_dir.mkdir()
    with pytest.raises(ExportError, match="no PNG frames"):
        read_embedded(empty_dir)


def test_sidecar_roundtrip_and_format(tmp_path: Path) -> None:
    path = write_sidecar(RECORD, tmp_path / "run.json")
    assert path == tmp_path / "run.json"
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == RECORD
    assert text.endswith("}\n")
    assert "café ☕" in text  # ensure_ascii=False
    assert text == json.dumps(RECORD, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert os.listdir(tmp_path) == ["run.json"]


def test_sidecar_unserialisable_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_sidecar({"bad": object()}, tmp_path / "run.json")
    assert os.listdir(tmp_path) == []


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several 1 MiB chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_frames_sha256() -> None:
    a = make_frames()
    assert frames_sha256(a) == frames_sha256(a.copy())
    assert frames_sha256(a[:, ::-1]) == frames_sha256(np.ascontiguousarray(a[:, ::-1]))
    b = a.copy()
    b[2, 3, 4, 0] ^= 1
    assert frames_sha256(b) != frames_sha256(a)
    assert frames_sha256(a.reshape(2, 2 * 32, 48, 3)) != frames_sha256(a)  # same bytes, other shape
    with pytest.raises(ExportError):
        frames_sha256(a.astype(np.float32))
