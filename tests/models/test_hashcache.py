"""The persistent content-hash cache: a new process does not hash unchanged weights again."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest

from t2v.models import hashcache
from t2v.models.loader import content_hash


@pytest.fixture
def hashed(monkeypatch):
    """Count the files actually read and hashed; start with an empty in-process memo (a fresh process)."""
    calls = []
    real = hashcache._file_sha256

    def counting(p):
        calls.append(p.name)
        return real(p)

    monkeypatch.setattr(hashcache, "_file_sha256", counting)
    hashcache.forget_memo()
    yield calls
    hashcache.forget_memo()


def _model(tmp_path):
    """A small folder that content_hash treats like a model: configs and weight files."""
    root = tmp_path / "model"
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text('{"_class_name": "TextToVideoSDPipeline"}')
    (root / "unet" / "config.json").write_text('{"in_channels": 4}')
    (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(os.urandom(3000))
    return root


def test_second_call_in_a_new_process_reads_no_file(tmp_path, t2v_env, hashed):
    model = _model(tmp_path)
    first = content_hash(model, None)
    assert sorted(hashed) == ["config.json", "diffusion_pytorch_model.safetensors", "model_index.json"]
    cache_file = t2v_env / "cache" / "content-hashes.json"
    entries = json.loads(cache_file.read_text())["files"]
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    assert entries[str(weights.resolve())]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert entries[str(weights.resolve())]["size"] == 3000

    hashed.clear()
    hashcache.forget_memo()  # as in a new process: only the file on disk remembers
    assert content_hash(model, None) == first
    assert hashed == []


def test_changed_file_is_hashed_again_and_changes_the_hash(tmp_path, hashed):
    model = _model(tmp_path)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    first = content_hash(model, None)
    st = weights.stat()

    # Same size, other bytes, other mtime.
    weights.write_bytes(os.urandom(3000))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hashed.clear()
    hashcache.forget_memo()
    second = content_hash(model, None)
    assert hashed == ["diffusion_pytorch_model.safetensors"] and second != first

    # Other size, mtime set back to what the cache holds for the old bytes: the size alone tells.
    weights.write_bytes(os.urandom(2000))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hashed.clear()
    hashcache.forget_memo()
    third = content_hash(model, None)
    assert hashed == ["diffusion_pytorch_model.safetensors"] and third not in (first, second)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"version": 1, "files": {"x": 3}}',
                                     b'{"version": 99, "files": {}}'])
def test_corrupt_cache_file_is_ignored_and_replaced(tmp_path, t2v_env, hashed, content):
    model = _model(tmp_path)
    expected = content_hash(model, None, cache_file=tmp_path / "elsewhere.json")
    cache_file = t2v_env / "cache" / "content-hashes.json"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(content)
    hashed.clear()
    hashcache.forget_memo()
    assert content_hash(model, None) == expected
    assert len(hashed) == 3  # nothing usable in the cache: everything read again
    assert len(json.loads(cache_file.read_text())["files"]) == 3  # and the cache is whole again


def test_lying_cache_entry_with_a_bad_digest_is_not_trusted(tmp_path, t2v_env, hashed):
    model = _model(tmp_path)
    first = content_hash(model, None)
    cache_file = t2v_env / "cache" / "content-hashes.json"
    data = json.loads(cache_file.read_text())
    for entry in data["files"].values():
        entry["sha256"] = "not a digest"
    cache_file.write_text(json.dumps(data))
    hashed.clear()
    hashcache.forget_memo()
    assert content_hash(model, None) == first and len(hashed) == 3


def test_unwritable_cache_still_hashes(tmp_path, hashed):
    model = _model(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    expected = content_hash(model, None, cache_file=tmp_path / "ok.json")
    hashcache.forget_memo()
    assert content_hash(model, None, cache_file=blocker / "cache.json") == expected


def test_threads_and_processes_writing_at_once_leave_a_valid_cache(tmp_path, t2v_env):
    models = []
    for i in range(4):
        m = _model(tmp_path / str(i))
        models.append(m)
    cache_file = t2v_env / "cache" / "content-hashes.json"
    code = ("import sys; from pathlib import Path; from t2v.models.loader import content_hash; "
            "print(content_hash(Path(sys.argv[1]), None))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(m)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "T2V_HOME": str(t2v_env)}) for m in models[:2]]
    hashcache.forget_memo()
    threads = [threading.Thread(target=content_hash, args=(m, None)) for m in models[2:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    digests = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and all(len(d) == 64 for d in digests)
    files = json.loads(cache_file.read_text())["files"]  # valid JSON, whoever wrote last
    assert files and all(set(e) == {"size", "mtime_ns", "sha256"} for e in files.values())
    assert not list(cache_file.parent.glob(".*.tmp"))  # no temp files left behind
    hashcache.forget_memo()
    assert [content_hash(m, None) for m in models[:2]] == digests
