"""Fixtures shared by several test folders (imported into their conftest.py)."""

from __future__ import annotations

import io

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than two spinning."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gif_frame(width: int, height: int, colour: int) -> bytes:
    """One GIF image block (a graphic control extension, then the image) of one colour, at the screen's corner."""
    import struct

    codes, packed, bits, out = [], bytearray(), 0, 0  # LZW with a clear code before every 2 pixels: no table
    for i in range(0, width * height, 2):
        codes += [4] + [colour] * min(2, width * height - i)
    for code in codes + [5]:
        out |= code << bits
        bits += 3
        while bits >= 8:
            packed.append(out & 0xFF)
            out, bits = out >> 8, bits - 8
    if bits:
        packed.append(out & 0xFF)
    data = b"\x02" + b"".join(bytes([len(packed[i:i + 255])]) + packed[i:i + 255] for i in range(0, len(packed), 255))
    return (b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00"
            + data + b"\x00")


def gif_file(width: int, height: int, body: bytes) -> bytes:
    """A looping GIF of a ``width`` x ``height`` screen (black and white) holding ``body``'s image blocks."""
    import struct

    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
            + b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00" + body + b"\x3b")


def gif_reaching_out(side: int, frames: int = 4) -> bytes:
    """A GIF whose header says 16x16 while its second frame is ``side`` pixels wide and its third ``side`` high:
    PyAV sees 16x16 frames, Pillow grows its canvas to ``side`` x ``side`` to hold them (a decompression bomb
    when ``side`` is large)."""
    body = (gif_frame(16, 16, 1) + gif_frame(side, 1, 1) + gif_frame(1, side, 1)
            + b"".join(gif_frame(1, 1, i % 2) for i in range(frames - 3)))
    return gif_file(16, 16, body)


def gif_big_screen(side: int, frames: int) -> bytes:
    """A few hundred bytes that decode to ``frames`` full frames of ``side`` x ``side`` pixels: a large screen
    and one-pixel images (each frame is the whole screen once decoded)."""
    return gif_file(side, side, b"".join(gif_frame(1, 1, i % 2) for i in range(frames)))


def apng_big_screen(side: int, frames: int) -> bytes:
    """An animated PNG of ``frames`` frames of ``side`` x ``side`` pixels, all black: compressed to a few KB."""
    from PIL import Image

    buf = io.BytesIO()
    black = [Image.new("RGB", (side, side)) for _ in range(2)]
    black[0].save(buf, format="PNG", save_all=True, append_images=[black[1]] * (frames - 1), duration=40)
    return buf.getvalue()


def mp4_big(side: int, frames: int) -> bytes:
    """An H.264 MP4 of ``frames`` black frames of ``side`` x ``side`` pixels: a few KB that decode to
    ``frames * side * side * 3`` bytes."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.zeros((side, side, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def count_real_calls(monkeypatch, owner, name: str, calls: list) -> None:
    """Patch ``owner.name`` (a method) to append 1 to ``calls`` on each call with real tensors, then run it. Calls
    on the meta device (the memory planner's dry runs, which a fresh runtime makes again) are not counted."""
    original = getattr(owner, name)

    def counting(self, *args, **kwargs):
        if not (args and getattr(args[0], "is_meta", False)):
            calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, counting)


def webm_lying(says: int, real: int, frames: int = 6, first_true: int = 0) -> bytes:
    """A VP8 WebM whose header says ``says`` x ``says`` while its frames are coded at ``real`` x ``real``; with
    ``first_true`` its first frames are honest (coded at the header's size) and a later keyframe changes the size."""
    return lying_clip(says, real, frames, first_true, container="webm", codec="libvpx")


def mp4_lying(says: int, real: int, frames: int = 6, first_true: int = 0) -> bytes:
    """The same lie as :func:`webm_lying` in an H.264 MP4: the track header says ``says`` x ``says``, the coded
    frames (their in-band sequence parameters) ``real`` x ``real``."""
    return lying_clip(says, real, frames, first_true, container="mp4", codec="libx264")


def webm_lying_keyframes(says: int, real: int, frames: int) -> bytes:
    """A WebM whose header says ``says`` x ``says`` while each of its ``frames`` frames is the same VP8 keyframe
    of ``real`` x ``real`` (one encode, its packet muxed ``frames`` times: fast to build at any size)."""
    import fractions

    import av
    import numpy as np

    buf = io.BytesIO()
    out = av.open(buf, "w", format="webm")
    stream = out.add_stream("libvpx", rate=8)
    stream.width, stream.height, stream.pix_fmt = says, says, "yuv420p"
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = real, real, "yuv420p", fractions.Fraction(1, 8)
    enc.options = {"deadline": "realtime", "cpu-used": "16"}
    frame = av.VideoFrame.from_ndarray(np.full((real, real, 3), 90, np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = 0, enc.time_base
    [key] = [bytes(p) for p in (*enc.encode(frame), *enc.encode(None))]
    for i in range(frames):
        packet = av.Packet(key)
        packet.pts = packet.dts = i
        packet.time_base, packet.stream, packet.is_keyframe = enc.time_base, stream, True
        out.mux(packet)
    out.close()
    return buf.getvalue()


def lying_clip(says: int, real: int, frames: int, first_true: int, *, container: str, codec: str) -> bytes:
    import fractions

    import av
    import numpy as np

    buf = io.BytesIO()
    out = av.open(buf, "w", format=container)
    stream = out.add_stream(codec, rate=8)
    stream.width, stream.height, stream.pix_fmt = says, says, "yuv420p"

    def encoder(side: int):
        enc = av.CodecContext.create(codec, "w")
        enc.width, enc.height, enc.pix_fmt, enc.time_base = side, side, "yuv420p", fractions.Fraction(1, 8)
        if codec == "libx264":  # no frame reordering: each encoder's packets follow the last one's
            enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
        else:  # the fastest VP8 settings: large lying frames in a second or two
            enc.options = {"deadline": "realtime", "cpu-used": "16"}
        return enc

    pts = 0
    for side, count in ((says, first_true), (real, frames - first_true)):
        if not count:
            continue
        enc = encoder(side)
        for _ in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), (40 + pts * 20) % 256, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = pts, enc.time_base
            pts += 1
            for packet in enc.encode(frame):
                packet.stream = stream
                out.mux(packet)
        for packet in enc.encode(None):
            packet.stream = stream
            out.mux(packet)
    out.close()
    return buf.getvalue()
