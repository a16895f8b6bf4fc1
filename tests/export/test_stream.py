"""The clip written while it is made (``stream``): a fragmented MP4 that plays from its first part, each part a
prefix of the run's final frames, the same frames as the run unstreamed, for a long video's segments (t2v-shapes),
a diffusion-forcing model's windows (tiny SkyReels-V2 DF) and Helios's chunks; the CLI's ``--stream``; no file left
by a run that fails or is cancelled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v import generate
from t2v.errors import Cancelled
from t2v.export import decode_video
from t2v.export.stream import ClipStream
from t2v.requests import GenerationRequest
from tests.fixtures import one_thread  # noqa: F401  (autouse: one torch thread per module)


def playable(path) -> int:
    """Frames a player decodes from the file as it is now."""
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_the_file_plays_after_every_part_and_holds_every_frame_once_closed(tmp_path):
    yy, xx = np.mgrid[0:33, 0:47]  # odd sides: padded to even for yuv420p
    frames = np.stack([np.stack([(xx * 5 + 6 * i) % 256, yy * 7, np.full_like(xx, 20 * i % 256)], -1)
                       for i in range(20)]).astype(np.uint8)
    stream = ClipStream(tmp_path / "s.mp4", fps=8)
    seen = []
    for end in (6, 6, 13, 20):  # a repeated prefix writes nothing new
        stream.frames(frames[:end])
        seen.append(playable(stream.path))
    assert seen == [5, 5, 12, 19]  # all but the newest frame, which the muxer closes when the next one comes
    stream.close()
    video, fps = decode_video(stream.path)
    assert video.shape == (20, 34, 48, 3) and fps == 8
    assert np.abs(video[:, :33, :47].astype(int) - frames.astype(int)).mean() < 3  # H.264 at CRF 18
    stream.discard()
    assert not stream.path.exists()


class Parts:
    """A stream that also keeps every prefix it was given."""

    def __init__(self, monkeypatch):
        self.parts: list[np.ndarray] = []
        real = ClipStream.frames

        def frames(stream, given):
            self.parts.append(np.array(given))
            self.playable = real(stream, given)
            return self.playable

        monkeypatch.setattr(ClipStream, "frames", frames)


def assert_prefixes_of(parts: list[np.ndarray], final: np.ndarray) -> None:
    assert all(np.array_equal(p, final[:len(p)]) for p in parts)
    assert [len(p) for p in parts] == sorted(len(p) for p in parts) and len(parts[-1]) == len(final)


def test_a_long_video_streams_each_segment_as_it_is_joined(tmp_path, monkeypatch):
    """t2v-shapes, 3 s at 8 fps in segments: each segment's frames (but the next seam's) are streamed when it is
    joined, before the next segment runs; the streamed file has the clip's frames; unstreamed, the same frames."""
    parts, steps = Parts(monkeypatch), []
    request = GenerationRequest(model="t2v-shapes", prompt="a red circle moving right", seed=1, seconds=3,
                                num_inference_steps=4, formats=("mp4",))
    result = generate(request, output=tmp_path / "long.mp4", stream=tmp_path / "live.mp4",
                      on_progress=lambda e: steps.append((e.step, len(parts.parts))) if e.stage == "denoise" else None)
    assert len(parts.parts) >= 3 and len(result.frames) == 24
    assert_prefixes_of(parts.parts[:-1], result.frames)
    assert len(parts.parts[0]) < len(result.frames)
    first_part_at = next(step for step, n in steps if n >= 1)
    assert first_part_at < steps[-1][0]  # the first part was out while denoising went on
    assert playable(tmp_path / "live.mp4") == 24
    again = generate(request.model_copy(update={"formats": ()}))
    assert np.array_equal(again.frames, result.frames)


@pytest.fixture(scope="module")
def df(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("skyreels-v2-df", tmp_path_factory.mktemp("df") / "df", seed=0)


def test_a_diffusion_forcing_run_streams_each_window(df, tmp_path, monkeypatch):
    """Three windows: after each, its new latent frames are decoded alone (the VAE's causal cache carried from
    window to window: no frame decoded twice, no decode at the end) and the clip so far streamed; the run's frames
    are the unstreamed run's, bit for bit."""
    from t2v.families import skyreels_stream

    whole = []
    monkeypatch.setattr(skyreels_stream, "decoded", lambda *a, **k: whole.append(1) or pytest.fail("decoded whole"))
    parts = Parts(monkeypatch)
    request = GenerationRequest(model=str(df), prompt="a red fox", seed=5, num_frames=17, formats=())
    result = generate(request, stream=tmp_path / "live.mp4")
    assert [len(p) for p in parts.parts] == [9, 13, 17, 17] and not whole
    assert_prefixes_of(parts.parts, result.frames)
    monkeypatch.undo()
    assert np.array_equal(generate(request).frames, result.frames)
    assert playable(tmp_path / "live.mp4") == 17


def test_extending_a_clip_with_diffusion_forcing_streams_the_clip_then_each_window(df, tmp_path, monkeypatch):
    """``extend`` on the DF model: the stream starts with the given clip, then each window's frames past the
    re-decoded overlap, and ends as the run's frames."""
    clip = tmp_path / "clip.mp4"
    generate(GenerationRequest(model=str(df), prompt="a red fox", seed=5, num_frames=9, formats=("mp4",)), output=clip)
    parts = Parts(monkeypatch)
    result = generate(GenerationRequest(model=str(df), prompt="the fox turns", seed=6, extend=str(clip), fps=16,
                                        seconds=0.75, formats=()), stream=tmp_path / "live.mp4")
    assert len(parts.parts) >= 3 and len(parts.parts[0]) > 9  # the clip's 9 frames and the first window's new ones
    assert_prefixes_of(parts.parts, result.frames)
    assert playable(tmp_path / "live.mp4") == len(result.frames)


def test_helios_streams_each_chunk_as_it_is_done(tmp_path_factory, tmp_path, monkeypatch):
    """Helios, three chunks: each is decoded when it is done and the clip so far streamed (33, 66, then the 97
    frames of the clip); the run's frames are the unstreamed run's, bit for bit."""
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model("helios", tmp_path_factory.mktemp("helios") / "helios", seed=0)
    parts, steps = Parts(monkeypatch), []
    request = GenerationRequest(model=str(model), prompt="a red fox", seed=5, num_frames=97, num_inference_steps=2,
                                formats=())
    result = generate(request, stream=tmp_path / "live.mp4",
                      on_progress=lambda e: steps.append((e.step, len(parts.parts))) if e.stage == "denoise" else None)
    assert [len(p) for p in parts.parts][:3] == [33, 66, 97] and len(result.frames) == 97
    assert_prefixes_of(parts.parts, result.frames)
    assert next(step for step, n in steps if n >= 1) == 2  # the first chunk played while the second was made
    monkeypatch.undo()
    assert np.array_equal(generate(request).frames, result.frames)
    assert playable(tmp_path / "live.mp4") == 97


def test_a_cancelled_or_failed_run_leaves_no_stream(df, tmp_path):
    live = tmp_path / "live.mp4"
    seen = []

    def cancel() -> bool:
        seen.append(live.exists())
        return len(seen) > 8  # after the first window was streamed

    with pytest.raises(Cancelled):
        generate(GenerationRequest(model=str(df), prompt="x", seed=5, num_frames=17, formats=()), stream=live,
                 should_cancel=cancel)
    assert any(seen) and not live.exists()


def test_the_cli_streams_to_the_output_name_and_replaces_it_with_the_finished_file(df, tmp_path, monkeypatch):
    from t2v.cli import app

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    out = tmp_path / "fox.mp4"
    r = CliRunner().invoke(app, ["generate", "a red fox", "--model", str(df), "--frames", "17", "--seed", "5",
                                 "--stream", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert playable(out) == 17 and record["num_frames"] == 17
    from t2v.export.metadata import read_embedded

    assert read_embedded(out)["seed"] == 5  # the finished file, with its record, replaced the stream
    webm = CliRunner().invoke(app, ["generate", "a red fox", "--model", str(df), "--frames", "9", "--stream", "-o",
                                    str(tmp_path / "fox2.webm"), "-q"])
    assert webm.exit_code == 0 and not (tmp_path / "fox2.mp4").exists() and (tmp_path / "fox2.webm").exists()
    bad = CliRunner().invoke(app, ["generate", "x", "--stream", "--server", "http://127.0.0.1:9"])
    assert bad.exit_code == 2 and "stream: --server fetches the finished file" in bad.output


def test_anyflow_far_streams_each_chunk_as_it_is_done(tmp_path_factory, tmp_path, monkeypatch):
    """AnyFlow FAR, chunks of 1, 3 and 3 latent frames: the clip so far is streamed as each is done (1, 13, then
    the 25 frames of the clip); the run's frames are the unstreamed run's, bit for bit."""
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model("anyflow-far", tmp_path_factory.mktemp("far") / "far", seed=0)
    parts = Parts(monkeypatch)
    request = GenerationRequest(model=str(model), prompt="a red fox", seed=5, num_frames=25, num_inference_steps=2,
                                formats=())
    result = generate(request, stream=tmp_path / "live.mp4")
    assert [len(p) for p in parts.parts][:3] == [1, 13, 25] and len(result.frames) == 25
    assert_prefixes_of(parts.parts, result.frames)
    monkeypatch.undo()
    assert np.array_equal(generate(request).frames, result.frames)
    assert playable(tmp_path / "live.mp4") == 25
