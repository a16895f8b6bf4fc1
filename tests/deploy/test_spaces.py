"""deploy/spaces: the Space's README front matter, its requirements, and its app run offline on t2v-shapes.

The app is imported from its file as a Space would run it (importlib, not as part of the t2v package), with
HF_HUB_OFFLINE/T2V_OFFLINE, a T2V_HOME of its own and T2V_MODEL=t2v-shapes, and one clip is made through the
same call the page's Generate button makes; the MP4 that comes out is decoded with PyAV.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "deploy" / "spaces"
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # the Hub's front-matter colours
HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "a10g-small",
            "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "h100", "zero-a10g"}
REQUIRED = ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "suggested_hardware",
            "license", "models", "short_description")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def front_matter(path: Path) -> tuple[dict, str]:
    """The YAML between the first two ``---`` lines, and the body after them."""
    import yaml

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines and lines[0].strip() == "---", f"{path} must start with a '---' line (Spaces front matter)"
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    assert end is not None, f"{path}: no closing '---' line after the front matter"
    meta = yaml.safe_load("\n".join(lines[1:end]))
    assert isinstance(meta, dict), "the front matter must be a YAML mapping"
    return meta, "\n".join(lines[end + 1:])


def test_front_matter_describes_a_gradio_space():
    from t2v.models.registry import REGISTRY

    meta, body = front_matter(SPACE / "README.md")
    missing = [k for k in REQUIRED if k not in meta]
    assert not missing, f"front matter lacks {missing}"
    assert meta["sdk"] == "gradio"
    # The Space runs the Gradio the project is tested with: sdk_version is that exact release.
    assert str(meta["sdk_version"]) == version("gradio")
    assert (SPACE / meta["app_file"]).is_file()
    assert meta["colorFrom"] in COLORS and meta["colorTo"] in COLORS
    assert meta["suggested_hardware"] in HARDWARE
    assert meta["license"] == "apache-2.0"
    assert 0 < len(meta["short_description"]) <= 60, "the Hub cuts short_description at 60 characters"
    assert str(meta.get("python_version", "3.10")).count(".") == 1
    # models: hub ids t2v knows (the bundled t2v-shapes is not on the hub, so it is not listed)
    models = meta["models"]
    assert isinstance(models, list) and models
    for model in models:
        assert HUB_ID.match(model), f"{model!r} is not a hub id"
        assert model in REGISTRY, f"{model!r} is not a model t2v registers"
    assert "t2v-shapes" not in models
    assert len(body.strip()) > 200, "the README needs a body saying what the Space is"


def test_requirements_install_t2v_and_spaces_compatibly():
    from packaging.requirements import Requirement

    reqs = {}
    for line in (SPACE / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line.endswith(".whl"):  # a wheel beside the file: t2v's, as python -m build names it now
            assert line == f"./t2v-{version('t2v')}-py3-none-any.whl", line
            reqs["t2v"] = Requirement(f"t2v @ file:///{line[2:]}")
        elif line and not line.startswith("#"):
            req = Requirement(line)
            reqs[req.name.lower()] = req
    assert {"t2v", "spaces"} <= set(reqs)
    assert reqs["t2v"].url or reqs["t2v"].specifier is not None
    if "torch" in reqs:  # must admit the torch this project runs on
        assert reqs["torch"].specifier.contains(version("torch").split("+")[0], prereleases=True)
    if "gradio" in reqs:  # the SDK installs gradio==sdk_version: a requirement must not fight it
        meta, _ = front_matter(SPACE / "README.md")
        assert reqs["gradio"].specifier.contains(str(meta["sdk_version"]))


@pytest.fixture(scope="module")
def space_app(tmp_path_factory):
    """deploy/spaces/app.py imported as a Space runs it, offline, on t2v-shapes."""
    tmp = tmp_path_factory.mktemp("space")
    name = "t2v_space_app_under_test"
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {"HF_HUB_OFFLINE": "1", "T2V_OFFLINE": "1", "T2V_HOME": str(tmp / "home"),
                           "T2V_MODEL": "t2v-shapes", "GRADIO_TEMP_DIR": str(tmp / "gradio"),
                           "GRADIO_ANALYTICS_ENABLED": "False"}.items():
            mp.setenv(var, value)
        for var in ("SPACE_ID", "SPACES_ZERO_GPU", "T2V_DEFAULT_MODEL", "T2V_DEVICE", "T2V_DTYPE", "T2V_WARM"):
            mp.delenv(var, raising=False)
        spec = importlib.util.spec_from_file_location(name, SPACE / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            yield module
        finally:
            sys.modules.pop(name, None)
            if hasattr(module, "shutdown"):
                module.shutdown()


def test_app_builds_the_page_in_single_user_mode(space_app, tmp_path_factory):
    import gradio as gr

    from t2v.ui import handlers as H

    assert isinstance(space_app.demo, gr.Blocks)
    assert space_app.MODEL == "t2v-shapes"
    assert space_app.service.settings.default_model == "t2v-shapes"
    assert str(space_app.service.settings.home).startswith(str(tmp_path_factory.getbasetemp()))
    assert not H.auth_required(space_app.service), "single user: no API key is asked for"
    assert space_app.service.workers == [], "jobs run under @spaces.GPU, not in worker threads"
    assert space_app.ON_ZEROGPU is False
    # The header no longer points at a REST API the Space does not serve.
    markdown = [str(b.value) for b in space_app.demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert not any("/docs" in text for text in markdown)
    assert any("t2v-shapes" in text for text in markdown)


def test_default_model_follows_t2v_model_and_the_gpu(space_app):
    pick = space_app.pick_model
    assert pick({}, gpu_available=False) == "t2v-shapes"
    assert pick({}, gpu_available=True) == space_app.HUB_DEFAULT
    assert pick({"T2V_MODEL": "t2v-shapes"}, gpu_available=True) == "t2v-shapes"
    ms = "damo-vilab/text-to-video-ms-1.7b"
    assert pick({"T2V_MODEL": f" {ms} "}, gpu_available=False) == ms
    assert space_app.has_gpu({"SPACES_ZERO_GPU": "true"}) is True  # ZeroGPU: no CUDA here, a GPU in @spaces.GPU
    from t2v.models.registry import REGISTRY

    assert space_app.HUB_DEFAULT in REGISTRY


def test_gpu_decorator_is_a_no_op_without_zerogpu(space_app):
    def f(x):
        return x + 1

    wrapped = space_app.gpu(f)
    assert wrapped(1) == 2  # runs in this process, returns what the function returns


def test_generate_through_the_page_handler_makes_a_real_video(space_app):
    import av
    import numpy as np

    before = list(space_app.GPU_RUNS)
    path = space_app.generate_video("a red circle moving right", seed=7, num_frames=8, width=64, height=64,
                                    formats=["mp4"])
    assert path.suffix == ".mp4" and path.is_file()
    home = space_app.service.settings.home.resolve()
    assert home in path.resolve().parents, "the video is a file of the job under T2V_HOME"
    job_id = path.parent.name
    assert space_app.GPU_RUNS == [*before, job_id], "the job ran inside run_next_job (the @spaces.GPU function)"

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 8
    assert frames[0].shape == (64, 64, 3)
    clip = np.stack(frames).astype(np.int16)
    assert clip.max() > 60, "the clip is not blank"
    assert np.abs(clip[-1] - clip[0]).mean() > 0.5, "the shape moves between the first and last frame"

    job = space_app.service.get(job_id)
    assert job.status == "succeeded"
    assert job.result["seed"] == 7 and job.result["num_frames"] == 8


def test_a_second_job_queued_meanwhile_also_runs(space_app):
    """Two Generate presses at once: both jobs run, one after the other, each in its own @spaces.GPU call."""
    import threading

    paths, errors = [], []

    def press(seed):
        try:
            paths.append(space_app.generate_video("a blue square moving up", seed=seed, num_frames=8, width=64,
                                                  height=64, num_inference_steps=4, formats=["mp4"]))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=press, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(paths) == 2 and paths[0] != paths[1]
    assert {p.parent.name for p in paths} <= set(space_app.GPU_RUNS)
