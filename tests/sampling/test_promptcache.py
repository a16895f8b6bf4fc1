"""The prompt cache: a repeated prompt gives the same frames and loads no text encoder; entries are scoped,
bounded, and a damaged one only means encoding again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import t2v
from t2v.models import caches
from t2v.models.deferred import Deferred
from t2v.models.loader import model_cache
from t2v.runtime import Runtime, using
from t2v.sampling import promptcache

LONG = "a red circle moving right " + " ".join(f"word{i}" for i in range(90))  # over CLIP's 77 tokens


def entries(home: Path) -> list[Path]:
    return sorted((home / "cache" / "prompts").glob("*.safetensors"))


def fresh_run(tiny_model, prompt="a cat", **fields):
    """``prompt`` on the tiny model under a fresh runtime (as a new process would: no model loaded yet); the
    video and the model the run loaded."""
    with using(Runtime()) as runtime:
        video = t2v.generate(prompt, model=str(tiny_model), seed=3, num_frames=4, num_inference_steps=2,
                             progress=False, **fields)
        (loaded,) = model_cache(runtime).entries.values()
    return video, loaded


def text_side_loaded(loaded) -> bool:
    raw = dict.__getitem__(loaded.components, "text_encoder")
    return not isinstance(raw, Deferred) or raw.loaded


def test_a_repeated_prompt_gives_the_same_frames_and_loads_no_text_encoder(tiny_model, t2v_env):
    first, loaded = fresh_run(tiny_model)
    assert text_side_loaded(loaded) and len(entries(t2v_env)) == 1  # a miss: encoded, then kept
    again, loaded = fresh_run(tiny_model)
    assert not text_side_loaded(loaded)  # a hit: the text encoder was never read
    assert isinstance(dict.__getitem__(loaded.components, "tokenizer"), Deferred)
    assert np.array_equal(first.frames, again.frames) and first.record["frames_sha256"] == again.record["frames_sha256"]
    other, loaded = fresh_run(tiny_model, prompt="a dog")
    assert text_side_loaded(loaded) and len(entries(t2v_env)) == 2
    assert not np.array_equal(other.frames, first.frames)


def test_the_cache_off_gives_the_same_frames(tiny_model, t2v_env, monkeypatch):
    cached, _ = fresh_run(tiny_model)
    cached, _ = fresh_run(tiny_model)  # from the cache
    monkeypatch.setenv("T2V_PROMPT_CACHE_MB", "0")
    plain, loaded = fresh_run(tiny_model, prompt="a cat")
    assert text_side_loaded(loaded)
    assert not isinstance(dict.__getitem__(loaded.components, "text_encoder"), Deferred)  # loaded with the rest
    assert np.array_equal(cached.frames, plain.frames)


def test_a_hit_gives_the_warnings_the_encode_gave(tiny_model, t2v_env):
    first, _ = fresh_run(tiny_model, prompt=LONG)
    again, loaded = fresh_run(tiny_model, prompt=LONG)
    assert not text_side_loaded(loaded)
    said = [w for w in first.record["warnings"] if "truncated" in w]
    assert said and [w for w in again.record["warnings"] if "truncated" in w] == said


def test_the_negative_prompt_and_guidance_are_part_of_the_key(tiny_model, t2v_env):
    fresh_run(tiny_model)
    _, loaded = fresh_run(tiny_model, negative_prompt="blurry")
    assert text_side_loaded(loaded)
    _, loaded = fresh_run(tiny_model, guidance_scale=1.0)  # no negative prompt encoded at all
    assert text_side_loaded(loaded)
    assert len(entries(t2v_env)) == 3


def test_a_damaged_entry_is_encoded_again_and_replaced(tiny_model, t2v_env):
    first, _ = fresh_run(tiny_model)
    (entry,) = entries(t2v_env)
    entry.write_bytes(b"not a safetensors file")
    again, loaded = fresh_run(tiny_model)
    assert text_side_loaded(loaded) and np.array_equal(first.frames, again.frames)
    third, loaded = fresh_run(tiny_model)
    assert not text_side_loaded(loaded) and np.array_equal(first.frames, third.frames)


def test_entries_are_scoped_so_one_key_never_reads_anothers():
    model = SimpleNamespace(content_hash="abc", source=SimpleNamespace(family="modelscope"),
                            plan=SimpleNamespace(device="cpu", dtype="fp32"))
    shared = promptcache.key(model, {"prompt": "a cat"})
    with promptcache.scope("key-a"):
        a = promptcache.key(model, {"prompt": "a cat"})
    with promptcache.scope("key-b"):
        b = promptcache.key(model, {"prompt": "a cat"})
    assert len({shared, a, b}) == 3
    assert promptcache.key(model, {"prompt": "a cat"}) == shared  # the scope ends with its block
    other = SimpleNamespace(**{**vars(model), "content_hash": "abd"})
    assert promptcache.key(other, {"prompt": "a cat"}) != shared  # another model never shares
    scaled = [promptcache.key(SimpleNamespace(**{**vars(model), "adapters": f"lora1@{s}"}), {"prompt": "a cat"})
              for s in (1.0, 0.5)]
    assert len({shared, *scaled}) == 3  # nor another LoRA scale (a LoRA may change the text encoder)


def test_a_server_job_reads_only_its_keys_entries(tiny_model, tmp_path):
    """Through the API with keys on: the same prompt from two keys is encoded once per key, and a key's second
    job reads its own entry (the record's encode time would otherwise tell one key another's prompts)."""
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from t2v.service.keys import create_key
    from tests.api.conftest import SMALL, make_settings, wait_for

    settings = make_settings(tmp_path / "home", tiny_model)
    app = create_app(settings)
    repo = app.state.service.repo
    keys = [{"Authorization": f"Bearer {create_key(repo.keys, name)[1]}"} for name in ("alice", "bob")]
    with TestClient(app) as client:
        for headers in (keys[0], keys[1], keys[0]):
            r = client.post("/v1/videos", json={"prompt": "a cat", "seed": 1, **SMALL}, headers=headers)
            assert r.status_code in (200, 201, 202), r.text
            assert wait_for(client, r.json()["id"], headers=headers)["status"] == "succeeded"
    assert len(entries(tmp_path / "home")) == 2


def test_the_folder_stays_within_its_budget_oldest_first(tmp_path):
    for i in range(5):
        p = tmp_path / f"{i}.safetensors"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1000 + i, 1000 + i))
    promptcache.trim(tmp_path, 2500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.safetensors", "4.safetensors"]


def test_t2v_cache_clears_the_prompt_cache(tiny_model, t2v_env):
    fresh_run(tiny_model)
    (cache,) = caches.pick(["prompts"])
    assert caches.usage(t2v_env, cache).files == 1
    assert caches.clear(t2v_env, cache)[0] == 1 and not entries(t2v_env)


def test_a_fresh_process_with_a_cached_prompt_imports_no_text_encoder_class(tmp_path):
    """The README's command, twice: the second process neither loads CLIP nor imports its model classes."""
    code = ("import sys, t2v; t2v.generate('a red circle moving right', model='t2v-shapes', seed=1, "
            "num_inference_steps=2, progress=False); "
            "print('transformers.models.clip.modeling_clip' in sys.modules)")
    env = {**os.environ, "T2V_HOME": str(tmp_path / "home")}
    run = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()
           for _ in range(2)]
    assert run == ["True", "False"]


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_budget_is_refused_naming_the_variable(monkeypatch, value):
    from t2v import InvalidRequest
    from t2v.settings import get_settings

    monkeypatch.setenv("T2V_PROMPT_CACHE_MB", value)
    with pytest.raises(InvalidRequest, match="T2V_PROMPT_CACHE_MB"):
        get_settings()
