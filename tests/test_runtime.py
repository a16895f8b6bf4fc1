"""The process's runtime owns the core's caches: a fresh one sees none of another's, and the composition root
installs one built from the service's settings."""

from __future__ import annotations

from t2v.models import hashcache, loader
from t2v.models.device import DevicePlan
from t2v.models.source import resolve_source
from t2v.runtime import Runtime, current, install, using
from t2v.settings import get_settings
from t2v.families import family_of_folder, get_family


def test_a_runtime_owns_its_loaded_models_and_digests(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    source = resolve_source(str(tiny_model), get_settings(), families=get_family)
    plan = DevicePlan(device="cpu", dtype="fp32")
    with using(Runtime()) as first:
        model = loader.load_model(source, plan, family=family_of_folder(source.path))
        assert loader.load_model(source, plan, family=family_of_folder(source.path)).load_s == 0.0  # reused from this runtime's cache
        assert first.sizes()["models"] == 1 and first.sizes()["content-hashes"] > 0
    with using(Runtime()) as second:
        assert loader.loaded_models() == [] and second.sizes() == {"models": 0}
        again = loader.load_model(source, plan, family=family_of_folder(source.path))
        assert again.load_s > 0 and again.content_hash == model.content_hash  # loaded afresh, the same weights
    first.clear()
    assert first.sizes()["models"] == 0 and second.sizes()["models"] == 1
    assert hashcache.MEMO in second.sizes()


def test_settings_come_from_the_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "env-home"))
    assert Runtime().settings.home == tmp_path / "env-home"  # none given: the environment's, read when asked
    pinned = Runtime(get_settings(home=tmp_path / "pinned"))
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "later"))
    assert pinned.settings.home == tmp_path / "pinned"
    with using(pinned):
        from t2v.models.diskcache import cache_path

        assert cache_path("x.json") == tmp_path / "pinned" / "cache" / "x.json"


def test_the_composition_root_installs_the_services_runtime(tmp_path):
    from t2v.service.compose import build_services

    settings = get_settings(home=tmp_path / "home")
    before = current()
    try:
        service = build_services(settings, no_workers=True)
        assert current() is service.runtime and service.runtime.settings is settings
        assert service.ready()["models_loaded"] == []
        service.runtime.cache("models", loader.ModelCache).budget_bytes = 123
        assert loader.model_cache().budget() == 123  # the jobs of this process load into the service's runtime
    finally:
        install(before)
