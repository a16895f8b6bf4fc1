"""``--motion-adapter``: any SD 1.5 model plus a MotionAdapter runs as AnimateDiff from the CLI, the library,
replay and the API (with the adapter under the same allow-list as models), and a registry adapter id or
alias stands for "the adapter on its default SD 1.5 model"."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families import get_family
from t2v.requests import GenerationRequest
from t2v.settings import Settings

SMALL = ["--frames", "4", "--steps", "2", "--seed", "5"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("motion")
    return {"sd": make_tiny_model("sd", root / "models" / "sd", seed=0),
            "adapter": make_tiny_model("animatediff-adapter", root / "models" / "adapter", seed=0),
            "wan": make_tiny_model("wan", root / "other" / "wan", seed=0), "root": root}


def frames_of(path):
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_cli_generate_with_a_motion_adapter_and_replay(parts, tmp_path, monkeypatch):
    from t2v.cli import app

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    out = tmp_path / "clip.mp4"
    r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(parts["sd"]), "--motion-adapter", str(parts["adapter"]),
                                 *SMALL, "-o", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["family"] == "animatediff" and record["motion_adapter"] == str(parts["adapter"].resolve())
    assert record["model"] == str(parts["sd"].resolve()) and record["num_frames"] == 4
    decoded = frames_of(out)
    assert len(decoded) == 4 and decoded[0].shape[:2] == (record["height"], record["width"])
    r = CliRunner().invoke(app, ["replay", str(out.with_suffix(".json")), "-o", str(tmp_path / "again.mp4")])
    assert r.exit_code == 0 and "identical frames" in r.output, r.output


def test_bad_pairs_are_refused_by_name(parts, tmp_path, monkeypatch):
    from t2v.cli import app

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    cases = ((parts["sd"], parts["sd"], "not a motion adapter"),
             (parts["wan"], parts["adapter"], "animates Stable Diffusion 1.5"),
             (parts["sd"], tmp_path / "missing", "does not exist"))
    for model, adapter, message in cases:
        r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(model), "--motion-adapter", str(adapter), *SMALL,
                                     "-o", str(tmp_path / "x.mp4")])
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "x.mp4").exists()
    r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(parts["sd"]), "--motion-adapter", str(parts["adapter"]),
                                 "--frames", "40", "-o", str(tmp_path / "x.mp4")])
    assert r.exit_code == 2 and "num_frames" in r.stderr, r.output  # more than the adapter's motion positions


def test_image_mode_refuses_a_motion_adapter(parts, tmp_path):
    from t2v.runner.resolve import resolve
    from t2v.requests import ImageRequest

    with pytest.raises(InvalidRequest) as e:
        resolve(ImageRequest(prompt="a cat", model=str(parts["sd"]), motion_adapter=str(parts["adapter"])),
                Settings(home=tmp_path))
    assert e.value.field == "motion_adapter"


def test_a_registered_adapter_stands_for_it_on_its_base_model(tmp_path):
    from t2v.runner.resolve import resolve
    from t2v.models.registry import REGISTRY, lookup

    adapters = [s for s in REGISTRY.values() if s.base_model]
    assert adapters and all(s.family == "animatediff" for s in adapters)
    spec = lookup("guoyww/animatediff-motion-adapter-v1-5-3")
    resolved = resolve(GenerationRequest(prompt="a cat", model=spec.id), Settings(home=tmp_path, offline=True))
    assert resolved.model == spec.base_model and resolved.motion_adapter == spec.id
    assert (resolved.width, resolved.height, resolved.num_frames) == (spec.defaults["width"], spec.defaults["height"],
                                                                       spec.defaults["num_frames"])
    from t2v.models.source import resolve_source

    with pytest.raises(ModelUnavailable) as e:  # nothing downloads offline; the message says what to do
        resolve_source(spec.id, Settings(home=tmp_path, offline=True), families=get_family)
    assert "offline" in str(e.value)


def test_api_takes_adapters_only_from_the_allow_list(parts, tmp_path):
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from t2v.models.allowlist import NOT_ALLOWED
    from tests.api.conftest import wait_for

    settings = Settings(home=tmp_path / "home", default_model=str(parts["sd"]), model_roots=str(parts["root"] / "models"))
    body = {"prompt": "a cat", "model": str(parts["sd"]), "num_frames": 4, "num_inference_steps": 2, "seed": 1}
    outside = parts["root"] / "other" / "adapter"
    if not outside.exists():
        import shutil

        shutil.copytree(parts["adapter"], outside)
    with TestClient(create_app(settings)) as c:
        for adapter in (str(outside), "/etc", "someone/unknown-adapter"):
            r = c.post("/v1/videos", json={**body, "motion_adapter": adapter})
            assert r.status_code == 422 and NOT_ALLOWED in r.text, r.text
        r = c.post("/v1/videos", json={**body, "motion_adapter": str(parts["adapter"])})
        assert r.status_code in (200, 201, 202), r.text
        job = wait_for(c, r.json()["id"])
        assert job["status"] == "succeeded", job
        video = c.get(f"/v1/videos/{job['id']}/content?format=mp4")
        assert video.status_code == 200
        path = tmp_path / "job.mp4"
        path.write_bytes(video.content)
        assert len(frames_of(path)) == 4
