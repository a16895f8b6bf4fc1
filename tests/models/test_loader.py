import json
import shutil

import pytest
import torch

from t2v.errors import ModelUnavailable, UnknownModel
from t2v.models.device import DevicePlan, plan_device
from t2v.models.loader import clear_cache, load_model, pick_variant
from t2v.models.source import resolve_source
from t2v.settings import get_settings
from t2v.families import family_of_folder, get_family

CPU = DevicePlan(device="cpu", dtype="fp32")


def test_folder_laid_out_like_the_hub_loads_including_fp16_variant(tiny_model):
    for comp, name in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")):
        assert (tiny_model / comp / f"{name}.safetensors").is_file()
        assert (tiny_model / comp / f"{name}.fp16.safetensors").is_file()
    assert json.loads((tiny_model / "model_index.json").read_text())["_class_name"] == "TextToVideoSDPipeline"
    source = resolve_source(str(tiny_model), get_settings(), families=get_family)
    assert source.kind == "folder" and source.family == "modelscope"
    source_family = family_of_folder(tiny_model)
    # On an accelerator in half precision the fp16 files are chosen; on CPU fp32 the full ones.
    assert pick_variant(tiny_model, DevicePlan(device="cuda", dtype="fp16"), source_family) == "fp16"
    assert pick_variant(tiny_model, CPU, source_family) is None
    clear_cache()
    loaded = load_model(source, CPU, family=source_family)
    assert loaded.unet.dtype == torch.float32 and loaded.variant is None
    # The fp16 files themselves load (and upcast) too.
    from t2v.models.loader import _load_components

    parts = _load_components(tiny_model, CPU, "fp16", source_family)
    fp16_unet = parts["unet"]
    a = next(fp16_unet.parameters())
    b = next(loaded.unet.parameters())
    assert torch.allclose(a, b, atol=1e-2) and not torch.equal(a, b)  # fp16-rounded copy of the same weights


def test_content_hash_changes_with_weights(model_copy):
    clear_cache()
    first = load_model(resolve_source(str(model_copy), get_settings(), families=get_family), CPU, family=family_of_folder(model_copy)).content_hash
    clear_cache()
    cfg = model_copy / "scheduler" / "scheduler_config.json"
    data = json.loads(cfg.read_text())
    data["steps_offset"] = 7
    cfg.write_text(json.dumps(data))
    second = load_model(resolve_source(str(model_copy), get_settings(), families=get_family), CPU, family=family_of_folder(model_copy)).content_hash
    assert first != second and len(first) == 64


def test_hub_id_resolves_from_the_cache_offline_with_its_revision(tiny_model, t2v_env):
    # Lay the tiny model out as the hub cache would: models--org--name/{refs/main, snapshots/<commit>/...}
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = t2v_env / "models" / "models--t2v-test--tiny-ms"
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    source = resolve_source("t2v-test/tiny-ms", get_settings(), families=get_family)
    assert source.kind == "hub" and source.revision == commit and source.id == "t2v-test/tiny-ms"


def test_unknown_hub_id_offline_says_how_to_fix():
    with pytest.raises(ModelUnavailable) as info:
        resolve_source("damo-vilab/text-to-video-ms-1.7b", get_settings(), families=get_family)
    msg = str(info.value)
    assert "not in the cache" in msg and "t2v models pull" in msg and "--model PATH" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("name, error, expect", [("nonsense", UnknownModel, "unknown model"),
                                                ("./no/such/dir", ModelUnavailable, "does not exist")])
def test_unknown_names(name, error, expect):
    with pytest.raises(error, match=expect):
        resolve_source(name, get_settings(), families=get_family)


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelUnavailable, match="no model_index.json"):
        resolve_source(str(tmp_path), get_settings(), families=get_family)
    with pytest.raises(ModelUnavailable, match="is a file"):
        resolve_source(str(tmp_path / "notes.txt"), get_settings(), families=get_family)


def test_missing_component(model_copy):
    shutil.rmtree(model_copy / "vae")
    with pytest.raises(ModelUnavailable, match="missing vae"):
        resolve_source(str(model_copy), get_settings(), families=get_family)


def test_corrupt_weight_file(model_copy):
    (model_copy / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"this is not safetensors")
    clear_cache()
    with pytest.raises(ModelUnavailable, match="could not load unet"):
        load_model(resolve_source(str(model_copy), get_settings(), families=get_family), CPU, family=family_of_folder(model_copy))


def test_device_plan_falls_back_with_warning():
    """A dtype the device cannot honour falls back with a warning (an absent device is refused instead:
    tests/models/test_device_presence.py)."""
    plan = plan_device("cpu", "fp16")
    assert plan.device == "cpu" and plan.dtype == "fp32"
    assert any("fp16" in w for w in plan.warnings)
    auto = plan_device("auto", "auto", cpu_bf16=False)
    assert (auto.device, auto.dtype, auto.reason) == ("cpu", "fp32", "auto: fp32 (T2V_CPU_BF16=0)")
    assert plan_device("cpu", "bf16").dtype == "bf16"


@pytest.mark.gpu
def test_gpu_auto_plan_uses_half_precision_and_fp16_variant(tiny_model):
    plan = plan_device("auto", "auto")
    assert plan.device == "cuda" and plan.dtype in ("fp16", "bf16")
    clear_cache()
    loaded = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family, want_fp16=True), plan, family=family_of_folder(tiny_model))
    assert loaded.variant == "fp16" and loaded.unet.dtype == plan.torch_dtype


def test_cache_keeps_models_within_budget(tiny_model, model_copy):
    from t2v.models import loader
    from t2v.runtime import Runtime, using

    with using(Runtime()) as runtime:
        cache = loader.model_cache(runtime)
        a = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), CPU, family=family_of_folder(tiny_model))
        assert load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), CPU, family=family_of_folder(tiny_model)).load_s == 0.0  # reused
        cache.budget_bytes = 10 * loader.weight_bytes(a)
        load_model(resolve_source(str(model_copy), get_settings(), families=get_family), CPU, family=family_of_folder(model_copy))
        assert len(loader.loaded_models()) == 2 and runtime.sizes()["models"] == 2  # both fit the budget
        cache.budget_bytes = 0
        load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), CPU, family=family_of_folder(tiny_model))  # reused: now the newest
        cache.trim()
        (only,) = loader.loaded_models()
    assert loader.loaded_models(runtime) == [only]  # still held by its runtime, which owns it
    assert str(model_copy) not in [m["model"] for m in loader.loaded_models()]  # the process's never saw it
    assert only["model"] == str(tiny_model) and only["weights_mb"] > 0
