"""The optional ``rife`` interpolation method: the user's RIFE model folder through rife-ncnn-vulkan-python-tntwise.
Without the package (or the folder) it says what to install (or give) before any work; with the package, a model
folder made here (an ncnn graph computing the mean of the two frames) is run on the CPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from t2v.errors import InvalidRequest

from t2v.errors import InvalidRequest
from t2v.post.interpolate import interpolate
from t2v.requests import PostSpec
from t2v.post.stage import check_post, run_post

# An ncnn graph with rife-ncnn-vulkan's blob names (in0, in1, the timestep in2 -> out0): (in0 + in1) / 2
MEAN_PARAM = """7767517
5 6
Input            in0      0 1 in0
Input            in1      0 1 in1
Input            in2      0 1 in2
BinaryOp         add      2 1 in0 in1 sum 0=0
BinaryOp         half     1 1 sum out0 0=2 1=1 2=5.000000e-01
"""


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "rife-v4.6"  # the folder's name tells the package the RIFE version
    folder.mkdir()
    (folder / "flownet.param").write_text(MEAN_PARAM)
    (folder / "flownet.bin").write_bytes(b"")
    return folder


def clip(n=4, size=32):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_rife_needs_a_model_folder_with_both_files(model_dir, tmp_path):
    with pytest.raises(InvalidRequest, match="interpolation rife needs interpolation_model"):
        PostSpec(interpolate=2, interpolation="rife")
    with pytest.raises(InvalidRequest, match="interpolation_model is for interpolation rife only"):
        PostSpec(interpolate=2, interpolation="flow", interpolation_model=str(model_dir))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "flownet.param").write_text(MEAN_PARAM)
    for folder, text in ((tmp_path / "nowhere", "is not a folder"), (tmp_path / "half", "has no flownet.bin")):
        spec = PostSpec(interpolate=2, interpolation="rife", interpolation_model=str(folder))
        with pytest.raises(InvalidRequest, match=text) as e:
            check_post(spec, 8, num_frames=4, width=32, height=32)
        assert e.value.field == "post.interpolation_model" and str(e.value).startswith("post.interpolation_model: ")
        with pytest.raises(InvalidRequest, match=text):
            interpolate(clip(), 2, method="rife", model=str(folder))


def test_without_the_package_rife_says_what_to_install(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "rife_ncnn_vulkan_python", None)  # as if not installed
    spec = PostSpec(interpolate=2, interpolation="rife", interpolation_model=str(model_dir))
    with pytest.raises(InvalidRequest) as e:
        check_post(spec, 8, num_frames=4, width=32, height=32)  # before any work
    assert e.value.field == "post.interpolation"
    assert "pip install 'rife-ncnn-vulkan-python-tntwise>=1.4,<2'" in str(e.value)
    assert "nearest valid: flow" in str(e.value)
    with pytest.raises(InvalidRequest, match="rife needs the rife-ncnn-vulkan package"):
        interpolate(clip(), 2, method="rife", model=str(model_dir))


def test_rife_runs_the_users_model_on_the_cpu(model_dir):
    pytest.importorskip("rife_ncnn_vulkan_python")
    frames = clip()
    out = interpolate(frames, 2, method="rife", model=str(model_dir))
    assert len(out) == 7 and all(np.array_equal(out[2 * i], f) for i, f in enumerate(frames))  # originals kept
    for i in range(3):  # the model's own output: the mean of the pair (ncnn rounds through float)
        mean = (frames[i].astype(np.int16) + frames[i + 1]) / 2
        assert np.abs(out[2 * i + 1] - mean).max() <= 1, i
    new, fps, steps = run_post(np.stack(frames), 8.0, PostSpec(interpolate=2, interpolation="rife",
                                                                interpolation_model=str(model_dir)))
    assert new.shape == (7, 32, 32, 3) and fps == 16
    assert steps[0]["method"] == "rife" and steps[0]["model"] == str(model_dir)


def test_a_server_reads_a_rife_folder_only_under_its_model_roots(model_dir, tmp_path):
    from t2v.service.limits import check_interpolation_model_allowed
    from t2v.settings import Settings

    inside = Settings(home=tmp_path / "home", model_roots=str(model_dir.parent))
    check_interpolation_model_allowed(str(model_dir), inside)  # under a root: taken
    check_interpolation_model_allowed(None, inside)  # no folder: nothing to check
    outside = Settings(home=tmp_path / "home", model_roots=str(tmp_path / "roots"))
    for folder in (str(model_dir), str(tmp_path / "roots" / ".." / model_dir.name), "/etc"):
        with pytest.raises(InvalidRequest, match="T2V_MODEL_ROOTS") as e:
            check_interpolation_model_allowed(folder, outside)
        assert e.value.field == "post.interpolation_model"


def test_t2v_post_with_rife_and_no_package_exits_2_with_the_hint(model_dir, tmp_path):
    import subprocess

    from t2v.export import write_outputs

    if __import__("importlib.util").util.find_spec("rife_ncnn_vulkan_python") is not None:
        pytest.skip("the package is installed here")
    write_outputs(np.stack(clip()), tmp_path / "clip", ["mp4"], 8.0)
    r = subprocess.run([sys.executable, "-m", "t2v", "post", str(tmp_path / "clip.mp4"), "--interpolate", "2",
                        "--interpolation", "rife", "--interpolation-model", str(model_dir), "-o",
                        str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "pip install 'rife-ncnn-vulkan-python-tntwise" in " ".join(r.stderr.split())
    assert not (tmp_path / "out.mp4").exists()
