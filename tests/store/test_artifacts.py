"""The artifact store, local and S3 (moto's S3 server on loopback, reached over real HTTP through boto3)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from t2v.errors import InvalidRequest
from t2v.store.artifacts import LocalArtifacts, S3Artifacts, StorageUnavailable, check_key, open_artifacts

from tests.s3server import bucket, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from tests.web import HTTP

boto3 = pytest.importorskip("boto3")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3_env):
    if request.param == "local":
        return LocalArtifacts(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"t2v-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return S3Artifacts(bucket, "team/a", endpoint_url=endpoint)


def test_round_trip_ranges_listing_and_deletes(store, tmp_path):
    data = os.urandom(3 * (1 << 20) + 123)  # more than one streamed chunk
    src = tmp_path / "clip.mp4"
    src.write_bytes(data)
    store.put_file("videos/job1/clip.mp4", src)
    store.put_bytes("videos/job1/preview.png", b"png")
    store.put_bytes("videos/job2/poster.png", b"poster")
    store.put_bytes("checkpoints/job1.ckpt", b"state")

    assert store.size("videos/job1/clip.mp4") == len(data)
    assert store.size("videos/job1/missing.mp4") is None and store.get_bytes("nope/x") is None
    assert b"".join(store.iter_range("videos/job1/clip.mp4")) == data
    assert b"".join(store.iter_range("videos/job1/clip.mp4", 100, 199)) == data[100:200]
    tail = len(data) - 10
    assert b"".join(store.iter_range("videos/job1/clip.mp4", tail)) == data[tail:]
    assert store.keys("videos/job1") == ["videos/job1/clip.mp4", "videos/job1/preview.png"]
    assert store.keys("videos") == ["videos/job1/clip.mp4", "videos/job1/preview.png", "videos/job2/poster.png"]

    out = tmp_path / "back" / "job1.ckpt"
    assert store.download("checkpoints/job1.ckpt", out) and out.read_bytes() == b"state"
    assert not store.download("checkpoints/none.ckpt", tmp_path / "none")
    assert not list((tmp_path / "back").glob(".*.part"))

    assert store.delete_prefix("videos/job1") == 2
    assert store.keys("videos") == ["videos/job2/poster.png"]
    store.delete("checkpoints/job1.ckpt")
    assert store.size("checkpoints/job1.ckpt") is None


def test_a_folder_removed_by_another_process_while_it_is_purged_is_no_error(tmp_path, monkeypatch):
    """A purge beside a worker's own cleanup: the job's folder goes between the purge's check and its listing."""
    store = LocalArtifacts(tmp_path / "store")
    store.put_bytes("videos/job1/part/preview.png", b"png")
    store.put_bytes("videos/job2/poster.png", b"poster")
    is_dir = Path.is_dir

    def vanishing(self):  # job1 is there when asked, and gone right after
        if self.name != "job1":
            return is_dir(self)
        shutil.rmtree(self, ignore_errors=True)
        return True

    monkeypatch.setattr(Path, "is_dir", vanishing)
    assert store.delete_prefix("videos/job1") == 0
    assert store.keys("videos") == ["videos/job2/poster.png"]


def test_s3_objects_sit_under_the_prefix_and_presign_works(s3_endpoint, s3_env):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="t2v-prefix")
    store = S3Artifacts("t2v-prefix", "/team/a/", endpoint_url=s3_endpoint)
    store.put_bytes("videos/j/clip.mp4", b"0123456789")
    names = [o["Key"] for o in client.list_objects_v2(Bucket="t2v-prefix")["Contents"]]
    assert names == ["team/a/videos/j/clip.mp4"]
    url = store.presign("videos/j/clip.mp4", expires_s=60)
    assert url.startswith(s3_endpoint + "/t2v-prefix/team/a/videos/j/clip.mp4?")  # path-style
    r = HTTP.get(url, headers={"Range": "bytes=2-4"})
    assert r.status_code == 206 and r.content == b"234"
    assert store.local_path("videos/j/clip.mp4") is None


@pytest.mark.parametrize("key", ["/etc/passwd", "../x", "a/../../b", "a//b", "a\\b", "a/./b", "", "x\x00y", "ü"])
def test_keys_cannot_leave_the_store(key, tmp_path):
    with pytest.raises(ValueError):
        check_key(key)
    with pytest.raises(ValueError):
        LocalArtifacts(tmp_path).put_bytes(key, b"x")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_local_writes_are_atomic_and_in_place_puts_are_free(tmp_path, monkeypatch):
    store = LocalArtifacts(tmp_path)
    path = store.path("videos/j/clip.mp4")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"made in place")
    store.put_file("videos/j/clip.mp4", path)  # a worker writing into the store's own folder: nothing to copy
    assert path.read_bytes() == b"made in place" and store.local_path("videos/j/clip.mp4") == path

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        store.put_bytes("videos/j/poster.png", b"x")
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]  # no partial file left


def test_open_artifacts_from_settings(tmp_path, s3_endpoint, s3_env):
    from t2v.settings import Settings

    assert isinstance(open_artifacts(Settings(home=tmp_path)), LocalArtifacts)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="t2v-settings")
    store = open_artifacts(Settings(home=tmp_path, storage_url="s3://t2v-settings/p", s3_endpoint_url=s3_endpoint))
    assert isinstance(store, S3Artifacts) and (store.bucket, store.prefix) == ("t2v-settings", "p")
    with pytest.raises(StorageUnavailable, match="cannot reach bucket 't2v-missing' at http://127.0.0.1"):
        open_artifacts(Settings(home=tmp_path, storage_url="s3://t2v-missing", s3_endpoint_url=s3_endpoint))
    with pytest.raises(StorageUnavailable, match="cannot reach bucket 'b' at http://127.0.0.1:9"):
        open_artifacts(Settings(home=tmp_path, storage_url="s3://b", s3_endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(InvalidRequest, match="s3://bucket/prefix"):  # a malformed URL: the user's to fix (exit 2)
        open_artifacts(Settings(home=tmp_path, storage_url="gs://b/p"))
