"""Sound with a clip: AAC in MP4, Opus in WebM, a WAV beside GIF and PNG; checked, fitted, read back; kept in step
by ``t2v post`` and set or dropped there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.errors import InvalidRequest
from t2v.export import decode_video
from t2v.export.audio import Audio, fit, make_audio, read_audio, write_wav
from t2v.export.writers import write_outputs

RATE = 24_000


def tones(seconds: float = 1.0, rate: int = RATE, freqs=(440.0, 880.0)) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return make_audio(np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in freqs]), rate)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples))


def test_every_format_carries_the_sound_and_the_frames_stay_the_same(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    sound = tones()
    outs = write_outputs(frames, tmp_path / "clip", ["mp4", "webm", "gif", "png"], 8, audio=sound)
    assert [o.format for o in outs] == ["mp4", "webm", "gif", "png", "wav"]  # one WAV beside GIF and PNG
    for name, rate, slack in (("clip.mp4", RATE, 1024), ("clip.webm", 48_000, 960), ("clip.wav", RATE, 0)):
        back = read_audio(tmp_path / name)
        assert back.channels == 2 and back.sample_rate == rate, name
        assert abs(back.samples.shape[1] - rate) <= slack, (name, back.samples.shape)  # codec padding at most a frame
        n = rate  # one second: both tones land on whole bins
        assert [round(peak_hz(back.samples[c, :n], rate)) for c in (0, 1)] == [440, 880], name
    wav = read_audio(tmp_path / "clip.wav")
    assert np.abs(wav.samples - sound.samples).max() <= 1 / 32767 + 1e-6  # 16-bit PCM, nothing else lost
    assert decode_video(tmp_path / "clip.mp4")[0].shape == (8, 64, 64, 3)
    assert read_audio(tmp_path / "clip.gif") is None  # GIF holds no sound: the WAV does


def test_silent_outputs_have_no_track_and_no_wav(tmp_path):
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    outs = write_outputs(frames, tmp_path / "c", ["mp4", "gif"], 8)
    assert [o.format for o in outs] == ["mp4", "gif"] and not (tmp_path / "c.wav").exists()
    assert read_audio(tmp_path / "c.mp4") is None


@pytest.mark.parametrize("samples, rate, message", [
    (np.zeros(100), 4_000, "sample rate 4000 Hz is outside 8000-192000; nearest valid: 8000"),
    (np.zeros(100), 400_000, "nearest valid: 192000"),
    (np.zeros((3, 100)), RATE, "3 channels; t2v writes mono or stereo"),
    (np.array([0.0, np.nan, 0.1]), RATE, "NaN or infinite"),
    (np.zeros((2, 0)), RATE, "expected (channels, samples) audio"),
])
def test_bad_sound_is_refused_naming_the_problem(samples, rate, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_audio(samples, rate)


def test_integer_and_interleaved_samples_are_normalised_and_the_hash_names_the_samples():
    pcm = (np.array([[0, 16384], [-32767, 32767], [0, 0]], dtype=np.int16))  # (samples, channels)
    a = make_audio(pcm, 8_000)
    assert a.samples.shape == (2, 3) and a.samples.dtype == np.float32 and a.samples[1, 1] == 1.0
    assert a.sha256 == make_audio(pcm, 8_000).sha256 != make_audio(pcm, 16_000).sha256
    assert a.to_record() == {"sample_rate": 8000, "channels": 2, "length_s": 0.000375, "sha256": a.sha256}


def test_fit_trims_or_pads_with_silence():
    a = tones(1.0)
    short, long = fit(a, 0.5), fit(a, 1.5)
    assert short.samples.shape == (2, RATE // 2) and np.array_equal(short.samples, a.samples[:, : RATE // 2])
    assert long.samples.shape == (2, RATE * 3 // 2) and not long.samples[:, RATE:].any()


def test_a_sound_file_over_the_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    import t2v.export.audio as audio

    path = write_wav(tones(2.0), tmp_path / "long.wav")
    monkeypatch.setattr(audio, "MAX_AUDIO_S", 1)
    with pytest.raises(InvalidRequest, match=r"long.wav is 2 s long, over the 1-s limit; trim it to at most 1 s"):
        read_audio(path)
    monkeypatch.setattr(audio, "MAX_AUDIO_S", 3)
    assert read_audio(path).length_s == pytest.approx(2.0)


def test_read_audio_refuses_what_is_not_sound(tmp_path):
    junk = tmp_path / "x.wav"
    junk.write_bytes(b"not audio at all" * 10)
    with pytest.raises(InvalidRequest, match="x.wav could not be decoded as audio"):
        read_audio(junk)
    with pytest.raises(InvalidRequest, match="is not a file"):
        read_audio(tmp_path / "missing.wav")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_post_sets_keeps_in_step_and_drops_a_clips_sound(tmp_path):
    write_wav(tones(2.5, 16_000, (300.0,)), tmp_path / "tone.wav")
    made = run("generate", "a red circle moving right", "--model", "t2v-shapes", "--steps", "2", "--seed", "1", "-o", tmp_path / "g.mp4", "-q")
    assert made.exit_code == 0, made.output
    r = run("post", tmp_path / "g.mp4", "-o", tmp_path / "s.mp4", "--audio", tmp_path / "tone.wav")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "s.json").read_text())
    assert rec["audio"]["length_s"] == 1.0 and rec["audio"]["source"] == "tone.wav"  # 8 frames at 8 fps: trimmed
    assert rec["post_history"][-1]["audio"]["sha256"] == rec["audio"]["sha256"]
    back = read_audio(tmp_path / "s.mp4")
    assert back.channels == 1 and round(peak_hz(back.samples[0, :16_000], 16_000)) == 300
    assert decode_video(tmp_path / "s.mp4")[0].shape == (8, 64, 64, 3)
    # a frame step keeps the sound, fitted to the new length: 15 frames at 16 fps
    r = run("post", tmp_path / "s.mp4", "-o", tmp_path / "i.gif", "--interpolate", "2")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "i.json").read_text())
    assert rec["audio"]["length_s"] == 15 / 16 and rec["audio"]["source"] == "input"
    assert [o["format"] for o in rec["outputs"]] == ["gif", "wav"]
    assert read_audio(tmp_path / "i.wav").samples.shape == (1, 15_000)
    # --no-audio drops it
    r = run("post", tmp_path / "s.mp4", "-o", tmp_path / "quiet.mp4", "--no-audio")
    assert r.exit_code == 0 and "no sound" in r.output
    assert read_audio(tmp_path / "quiet.mp4") is None and "audio" not in json.loads((tmp_path / "quiet.json").read_text())
    # a sound file with no sound is refused, and nothing is written
    r = run("post", tmp_path / "g.mp4", "-o", tmp_path / "bad.mp4", "--audio", tmp_path / "g.mp4")
    assert r.exit_code == 2 and "g.mp4 has no audio track" in r.output
    assert not (tmp_path / "bad.mp4").exists() and not (tmp_path / "bad.json").exists()


@pytest.fixture
def singing(monkeypatch):
    """t2v-shapes made to return sound with its frames, as a model with an audio decoder (LTX-2) does: a stereo
    tone a little longer than the clip, drawn from the seed."""
    from t2v.families.modelscope import ModelScopeFamily

    original = ModelScopeFamily.sample

    def sample(self, model, request, ctx):
        out = original(self, model, request, ctx)
        t = np.arange(int(1.25 * 16_000)) / 16_000
        f = 200.0 + 10 * request.seed
        out.audio = (np.stack([0.3 * np.sin(2 * np.pi * f * t), 0.3 * np.sin(4 * np.pi * f * t)]), 16_000)
        return out

    monkeypatch.setattr(ModelScopeFamily, "sample", sample)
    monkeypatch.setattr(ModelScopeFamily, "makes_sound", True)


def test_no_audio_on_a_silent_model_is_refused_naming_the_field(tmp_path):
    r = run("generate", "a red circle moving right", "--model", "t2v-shapes", "--no-audio", "-o", tmp_path / "c.mp4")
    assert r.exit_code == 2 and "no_audio" in r.output and "makes silent clips" in r.output
    assert not list(tmp_path.iterdir())


def test_a_models_sound_is_recorded_written_fitted_and_replayed(singing, tmp_path):
    r = run("generate", "a red circle moving right", "--model", "t2v-shapes", "--steps", "2", "--seed", "2", "--format", "mp4",
            "--format", "gif", "--interpolate", "2", "-o", tmp_path / "c.mp4", "-q")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "c.json").read_text())
    # 8 frames at 8 fps interpolated to 15 at 16: the 1.25-s sound is trimmed to the clip's 0.9375 s
    assert rec["audio"] == {**rec["audio"], "sample_rate": 16_000, "channels": 2, "length_s": 0.9375,
                            "source": "generated"}
    assert [o["format"] for o in rec["outputs"]] == ["mp4", "gif", "wav"]
    wav = read_audio(tmp_path / "c.wav")
    assert wav.samples.shape == (2, 15_000) and round(peak_hz(wav.samples[0], 16_000)) == 220
    assert read_audio(tmp_path / "c.mp4").channels == 2
    again = run("replay", tmp_path / "c.json", "-o", tmp_path / "again.mp4", "--strict")
    assert again.exit_code == 0 and "identical frames and sound" in again.output
    # --no-audio: the same frames, no sound anywhere, and the request says so
    r = run("generate", "a red circle moving right", "--model", "t2v-shapes", "--steps", "2", "--seed", "2", "--format", "gif",
            "--no-audio", "-o", tmp_path / "q.gif", "-q")
    assert r.exit_code == 0, r.output
    quiet = json.loads((tmp_path / "q.json").read_text())
    assert "audio" not in quiet and quiet["no_audio"] is True and not (tmp_path / "q.wav").exists()
    assert quiet["frames_sha256"] == rec["frames_sha256"]


def test_a_replay_whose_sound_differs_says_so(singing, tmp_path):
    r = run("generate", "a red circle moving right", "--model", "t2v-shapes", "--steps", "2", "--seed", "1", "-o", tmp_path / "c.mp4", "-q")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "c.json").read_text())
    rec["audio"]["sha256"] = "0" * 64
    (tmp_path / "c.json").write_text(json.dumps(rec))
    again = run("replay", tmp_path / "c.json", "-o", tmp_path / "again.mp4", "--strict")
    assert again.exit_code == 1 and "sound differs (the frames are identical)" in again.output
