"""Step caches (``--cache``) on the tiny models: each runs, skips work, is recorded, replays to the same frames,
leaves the shared loaded model untouched; refused ones fail before loading; DeepCache resumes bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.sampling import stepcache
from t2v.errors import InvalidRequest
from t2v import generate
from t2v.record import request_fields
from t2v.requests import GenerationRequest
from tests.families.checks import assert_resume_after_cancel_is_bitwise, run

DIT_CACHES = ("fbc:threshold=0.5", "taylorseer:interval=2,warmup=1", "pab", "fastercache", "magcache")
# settings sure to skip something in 4 steps of a random-weight model
EAGER = ("fbc:threshold=1.0", "taylorseer:interval=2,warmup=1", "pab", "fastercache:end=1000",
         "magcache:retention=0,threshold=0.5")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("stepcache-models")
    kinds = ("wan", "cogvideox", "animatediff", "ltx", "hunyuan", "wan22-a14b", "hunyuan15", "skyreels-v2")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in kinds}


@pytest.fixture
def linear_calls(monkeypatch):
    """Counts every ``nn.Linear`` call on real tensors (text encoders included): a cache that skips blocks makes
    fewer."""
    import torch.nn as nn

    monkeypatch.setenv("T2V_PROMPT_CACHE_MB", "0")  # every run encodes its prompt: the counts compare the steps
    calls = [0]
    original = nn.Linear.forward

    def counting(self, *args, **kwargs):
        if not (args and getattr(args[0], "is_meta", False)):  # the planner's dry runs (meta device) aside
            calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nn.Linear, "forward", counting)
    return calls


@pytest.fixture
def loaded(monkeypatch):
    """The shared LoadedModels the runs get from the loader's cache."""
    from t2v.models import loader
    from t2v.runner import core

    seen, original = [], loader.load_model

    def spy(*args, **kwargs):
        model = original(*args, **kwargs)
        seen.append(model)
        return model

    monkeypatch.setattr(loader, "load_model", spy)
    monkeypatch.setattr(core, "load_model", spy)  # the runner's own name for it
    return seen


def counted(calls, model, **fields):
    calls[0] = 0
    frames, result = run(model, **fields)
    return frames, result, calls[0]


def assert_untouched(models) -> None:
    """No hook, patched forward or cache config on any module of the shared loaded models."""
    import torch

    for m in models:
        for component in m.components.values():
            if isinstance(component, torch.nn.Module):
                for module in component.modules():
                    assert "forward" not in vars(module) and not hasattr(module, "_diffusers_hook")
                    assert not hasattr(module, stepcache.STEP_CACHE) and getattr(module, "_cache_config", None) is None


def assert_cache_works(model, cache, calls, loaded, **fields):
    """The cached run skips work, is recorded canonically and replays to the same frames; the shared model is
    untouched, so an uncached run afterwards gives the uncached frames."""
    plain, _, n_plain = counted(calls, model, **fields)
    frames, result, n_cached = counted(calls, model, cache=cache, **fields)
    canonical = GenerationRequest(prompt="x", cache=cache).cache
    assert result.record["cache"] == canonical and ":" in canonical  # every parameter spelled out
    assert n_cached < n_plain  # blocks or attention were skipped
    replayed = generate(GenerationRequest(**{**request_fields(result.record), "formats": ()}))
    assert replayed.record["frames_sha256"] == result.record["frames_sha256"]
    assert np.array_equal(run(model, **fields)[0], plain)
    assert_untouched(loaded)
    return frames, plain


def test_deepcache_on_unet3d(tiny_model, linear_calls, loaded):
    frames, plain = assert_cache_works(tiny_model, "deepcache", linear_calls, loaded)
    assert not np.array_equal(frames, plain)  # the deep features were reused, not recomputed


def test_deepcache_interval_one_is_exact(tiny_model, linear_calls):
    plain, _, n_plain = counted(linear_calls, tiny_model)
    frames, _, n = counted(linear_calls, tiny_model, cache="deepcache:interval=1")
    assert np.array_equal(frames, plain) and n == n_plain  # every step full: the uncached computation


@pytest.mark.parametrize("at", [1, 2])  # resumed at a step that reuses the feature kept at step 0
def test_deepcache_resumes_bitwise(tiny_model, tmp_path, at):
    spec = assert_resume_after_cancel_is_bitwise(run, tmp_path, at, tiny_model, cache="deepcache:interval=3")
    import torch

    saved = torch.load(spec.path, weights_only=True)
    assert "deepcache_feature" in saved["extra"]


def test_deepcache_on_animatediff(models, linear_calls, loaded):
    assert_cache_works(models["animatediff"], "deepcache:interval=2", linear_calls, loaded)


@pytest.mark.parametrize("cache", DIT_CACHES)
def test_diffusers_hooks_on_wan(models, cache, linear_calls, loaded):
    if cache == "magcache":
        stepcache.calibrate(GenerationRequest(prompt="calibration", model=str(models["wan"]), seed=0), generate)
    assert_cache_works(models["wan"], cache, linear_calls, loaded)


@pytest.mark.parametrize(("kind", "family"), [("cogvideox", "cogvideox"), ("ltx", "ltx"), ("hunyuan", "hunyuan"),
                                             ("wan22-a14b", "wan"), ("hunyuan15", "hunyuan15"),
                                             ("skyreels-v2", "skyreels-v2")])
def test_every_transformer_family_takes_every_hook(models, kind, family, linear_calls, loaded):
    """Each family that declares diffusers' hooks runs each of them, skipping work, replayably (Wan 2.2 A14B:
    both experts hooked, MagCache calibrated per expert; HunyuanVideo 1.5 and SkyReels-V2 through the block
    layouts t2v registers)."""
    from t2v.families import get_family

    assert set(get_family(family).caches) == {c.split(":")[0] for c in DIT_CACHES}
    stepcache.calibrate(GenerationRequest(prompt="calibration", model=str(models[kind]), seed=0), generate)
    plain, _, n_plain = counted(linear_calls, models[kind])
    for cache in EAGER:
        frames, result, n = counted(linear_calls, models[kind], cache=cache)
        assert n < n_plain, cache
        assert np.array_equal(run(models[kind], cache=cache)[0], frames), cache
    assert np.array_equal(run(models[kind])[0], plain)
    assert_untouched(loaded)


def test_fastercache_skips_the_batched_unconditional_half(models, linear_calls, loaded, monkeypatch):
    """CogVideoX batches [uncond, cond]: FasterCache runs the conditional half alone on some steps."""
    from diffusers.models.embeddings import CogVideoXPatchEmbed

    batches, original = [], CogVideoXPatchEmbed.forward
    monkeypatch.setattr(CogVideoXPatchEmbed, "forward",
                        lambda self, text, image: batches.append(image.shape[0]) or original(self, text, image))
    frames, _ = assert_cache_works(models["cogvideox"], "fastercache:start=-1,end=1000,uncond_skip=2", linear_calls,
                                   loaded, num_inference_steps=4)
    assert frames.std() > 1
    assert 1 in batches and 2 in batches  # some steps ran the conditional half only


def test_magcache_without_calibration_names_the_command(models):
    with pytest.raises(InvalidRequest) as e:
        run(models["cogvideox"], cache="magcache", num_inference_steps=3)
    assert e.value.field == "cache" and "t2v cache calibrate" in str(e.value) and "--steps 3" in str(e.value)


def test_calibrate_command_writes_ratios(models):
    from t2v.cli.app import app

    result = CliRunner().invoke(app, ["cache", "calibrate", "--model", str(models["cogvideox"]), "--steps", "3"])
    assert result.exit_code == 0, result.output
    frames, res = run(models["cogvideox"], cache="magcache:retention=0", num_inference_steps=3)
    assert res.record["cache"].startswith("magcache:") and frames.std() > 1


@pytest.mark.parametrize(("kind", "cache", "takes"), [("modelscope", "fbc", "deepcache"),
                                                       ("wan", "deepcache", "fbc, taylorseer"),
                                                       ("animatediff", "pab", "deepcache")])
def test_refused_before_loading(tiny_model, models, monkeypatch, kind, cache, takes):
    from t2v.models import loader
    from t2v.runner import core

    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("loaded weights"))
    monkeypatch.setattr(core, "load_model", lambda *a, **k: pytest.fail("loaded weights"))
    with pytest.raises(InvalidRequest) as e:
        run(tiny_model if kind == "modelscope" else models[kind], cache=cache)
    assert e.value.field == "cache" and f"cannot use the {cache} step cache" in str(e.value) and takes in str(e.value)


@pytest.mark.parametrize(("cache", "words"), [("deepcache:branch=1", "branch must be at most 0"),
                                              ("pab:spatial=0", "at least one of spatial")])
def test_bad_settings_name_the_field(tiny_model, models, cache, words):
    with pytest.raises(InvalidRequest) as e:
        run(tiny_model if cache.startswith("deep") else models["wan"], cache=cache)
    assert e.value.field == "cache" and words in str(e.value)
