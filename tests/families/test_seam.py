"""The family seam: discovery, plugins, refusals by class, rules, and a Wan job through every front end."""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families import base, registry as families
from t2v.models import catalog
from t2v.requests import GenerationRequest


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from tests.tinymodels import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "wan", family="wan", fp16_variant=False)


def test_every_builtin_family_is_found_and_claims_its_pipeline_classes():
    fams = families.all_families()
    assert {"modelscope", "sd", "sdxl", "wan"} <= set(fams)
    assert families.family_for_pipeline("WanPipeline").name == "wan"
    assert families.family_for_pipeline("WanImageToVideoPipeline").name == "wan"
    assert families.family_for_pipeline("TextToVideoSDPipeline").name == "modelscope"
    assert families.family_for_pipeline("NoSuchVideoPipeline") is None
    # make-tiny names come from the families' own tiny builders
    assert {"modelscope", "sd", "sdxl", "wan", "wan22-ti2v", "wan22-a14b", "wan-i2v"} <= set(families.tiny_builders())


def test_a_folder_of_an_unknown_pipeline_class_is_refused_by_name(model_copy):
    from t2v.models.source import resolve_source
    from t2v.settings import get_settings

    index = json.loads((model_copy / "model_index.json").read_text())
    (model_copy / "model_index.json").write_text(json.dumps({**index, "_class_name": "MysteryVideoPipeline"}))
    (model_copy / "t2v.json").unlink()
    with pytest.raises(ModelUnavailable, match="MysteryVideoPipeline.*t2v runs: .*TextToVideoSDPipeline"):
        resolve_source(str(model_copy), get_settings(), families=families.get_family)
    # and a component class the family does not load is named too
    (model_copy / "model_index.json").write_text(json.dumps({**index, "unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(ModelUnavailable, match="unet is a UNet2DConditionModel.*UNet3DConditionModel"):
        resolve_source(str(model_copy), get_settings(), families=families.get_family)


def test_a_folder_without_t2v_json_gets_its_familys_defaults_and_own_scheduler(wan, tmp_path):
    from t2v.models.registry import folder_info

    bare = tmp_path / "bare"
    shutil.copytree(wan, bare)
    (bare / "t2v.json").unlink()
    family, defaults = folder_info(bare, families.get_family)
    assert family == "wan" and defaults["num_frames"] == 81 and defaults["scheduler"] == "model"
    assert defaults["width"] % 16 == 0 and defaults["height"] % 16 == 0


@pytest.mark.parametrize("frames, nearest", [(6, 5), (8, 9), (80, 81), (2, 1)])
def test_frame_rule_names_the_nearest_valid_count(frames, nearest):
    rules = base.Rules(size_multiple=16, frame_step=4)
    with pytest.raises(InvalidRequest, match=f"num_frames: {frames} is not 4k\\+1.*nearest valid: {nearest}"):
        rules.check(GenerationRequest(prompt="x", num_frames=frames, width=64, height=32))
    with pytest.raises(InvalidRequest, match="width: 88 is not a multiple of 16.*nearest valid: 96") as e:
        rules.check(GenerationRequest(prompt="x", num_frames=5, width=88, height=32))
    assert e.value.field == "width"


def test_a_plugin_family_registers_through_the_entry_point(tmp_path, monkeypatch):
    """A real distribution on sys.path with a t2v.families entry point (no monkeypatched lookup)."""
    pkg = tmp_path / "site"
    (pkg / "t2v_demo_plugin").mkdir(parents=True)
    (pkg / "t2v_demo_plugin" / "__init__.py").write_text(
        "from t2v.families import Family\n\n"
        "class DemoFamily(Family):\n"
        "    name = 'demo'\n"
        "    pipelines = ('DemoVideoPipeline',)\n"
        "    tiny = {'demo': 't2v_demo_plugin:make'}\n"
    )
    dist = pkg / "t2v_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: t2v-demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[t2v.families]\ndemo = t2v_demo_plugin:DemoFamily\n")
    monkeypatch.syspath_prepend(str(pkg))
    fresh = catalog.Catalog()  # t2v's cards; the plugins not read yet
    monkeypatch.setattr(catalog, "CATALOG", fresh)
    monkeypatch.setattr(families, "CATALOG", fresh)
    try:
        assert fresh.card("demo") is not None and fresh.plugins_read  # an unknown name reads the plugins
        assert fresh.card("demo").ref == "t2v_demo_plugin:DemoFamily"
        fams = families.all_families()
        assert fams["demo"].pipelines == ("DemoVideoPipeline",) and "wan" in fams
        assert families.family_for_pipeline("DemoVideoPipeline").name == "demo"
        assert "demo" in families.tiny_builders()
    finally:
        sys.modules.pop("t2v_demo_plugin", None)


def test_plan_works_for_wan_and_modelscope(wan, tiny_model):
    from typer.testing import CliRunner

    from t2v.cli import app

    for model in (wan, tiny_model):
        r = CliRunner().invoke(app, ["plan", "a red fox", "--model", str(model)])
        assert r.exit_code == 0, r.output
        assert "speed" in r.output and "low" in r.output and "memory=auto → the" in r.output


def test_a_wan_job_runs_through_the_api_and_the_web_ui_handlers(wan, tmp_path):
    """The service, as `t2v serve --model ./wan` runs it: the job's record names the family, its file decodes
    to the requested frames, and the UI's handlers show the same job."""
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from t2v.ui import handlers as H
    from tests.api.conftest import make_settings, wait_for

    settings = make_settings(tmp_path / "home", wan)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/videos", json={"prompt": "a red fox", "num_frames": 5, "width": 32, "height": 32,
                                            "num_inference_steps": 2, "seed": 7})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        record = client.get(f"/v1/videos/{job['id']}/metadata").json()
        assert record["family"] == "wan" and record["num_frames"] == 5 and record["scheduler"] == "model"
        content = client.get(f"/v1/videos/{job['id']}/content")
        assert content.status_code == 200
        path = tmp_path / "out.mp4"
        path.write_bytes(content.content)
        with av.open(str(path)) as f:
            frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
        assert len(frames) == 5 and frames[0].shape == (32, 32, 3)
        bad = client.post("/v1/videos", json={"prompt": "x", "num_frames": 6, "width": 32, "height": 32})
        assert bad.status_code == 422 and "nearest valid: 5" in bad.text
        service = client.app.state.service
        v = H.view(service, job["id"], None)
        deadline = time.time() + 30
        while not v.finished and time.time() < deadline:
            v = H.view(service, job["id"], None)
        assert v.status == "succeeded"


def test_group_offloaded_transformers_give_the_same_frames(wan):
    """The low plan's group offload (diffusers' hooks), exercised on the CPU as both devices: same frames."""
    import numpy as np
    import torch

    from t2v.sampling.offload import GROUP_OFFLOADED, group_offload
    from t2v import generate
    from t2v.models.loader import clear_cache, load_model
    from t2v.models.source import resolve_source
    from t2v.models.device import DevicePlan
    from t2v.settings import get_settings

    torch.set_num_threads(1)
    clear_cache()
    request = GenerationRequest(prompt="a red fox", model=str(wan), seed=3, formats=(), num_inference_steps=2)
    plain = generate(request).frames
    loaded = load_model(resolve_source(str(wan), get_settings(), families=families.get_family), DevicePlan(device="cpu", dtype="fp32"), family=families.family_of_folder(wan))
    group_offload(loaded.components, "cpu")  # the cached model: the next run uses the hooked transformer
    assert getattr(loaded.components["transformer"], GROUP_OFFLOADED)
    offloaded = generate(request).frames
    clear_cache()
    assert np.array_equal(plain, offloaded)


def test_group_offload_streams_its_transfers_only_on_cuda():
    from t2v.sampling.offload import offload_options

    assert offload_options("cuda:0") == {"use_stream": True, "record_stream": True, "non_blocking": True}
    assert not any(offload_options("cpu").values()) and not any(offload_options("mps").values())


@pytest.mark.gpu
def test_streamed_group_offload_gives_the_plain_offloads_frames_on_cuda(wan, monkeypatch):
    """On CUDA the low plan's streamed block transfers change no value: the frames equal those of the same
    plan with plain (blocking, unpinned) transfers."""
    import numpy as np

    from t2v import generate
    from t2v.models.loader import clear_cache
    from t2v.sampling import offload

    request = GenerationRequest(prompt="a red fox", model=str(wan), seed=3, formats=(), num_inference_steps=2,
                                device="cuda", dtype="bf16", memory="low")
    clear_cache()
    streamed = generate(request).frames
    clear_cache()
    monkeypatch.setattr(offload, "offload_options", lambda device: {})
    plain = generate(request).frames
    clear_cache()
    assert np.array_equal(streamed, plain)


def test_a_t2v_json_family_that_contradicts_the_pipeline_class_is_named(tiny_model, tmp_path):
    folder = tmp_path / "wrong"
    shutil.copytree(tiny_model, folder)
    (folder / "t2v.json").write_text(json.dumps({"family": "wan"}))
    with pytest.raises(ModelUnavailable, match=r"t2v.json says family 'wan', but model_index.json's pipeline "
                                               r"'TextToVideoSDPipeline' is the modelscope family's"):
        families.family_of_folder(folder)
    (folder / "t2v.json").write_text(json.dumps({"family": "modelscope"}))
    assert families.family_of_folder(folder).name == "modelscope"
