"""Uploaded images (assets) in object storage (moto's S3 server on loopback, the in-process app): an upload is the
object ``<prefix>/assets/<id>.<ext>`` with nothing under ``$T2V_HOME/assets``, an image-to-video job's worker reads
it from the bucket, another key cannot read it, delete and purge remove it, and a bucket that cannot take the file
answers 503 naming it."""

from __future__ import annotations

import hashlib

import boto3
import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service.assets import AssetNotFound
from t2v.service.keys import create_key
from tests.api.conftest import make_settings, wait_for
from tests.api.test_assets import I2V, bearer, loc_field, png, tiny_i2v, upload  # noqa: F401  (tiny_i2v: a fixture)
from tests.s3server import bucket, objects, s3_endpoint, s3_env  # noqa: F401  (fixtures)

PREFIX = "t2v"


@pytest.fixture
def s3_settings(tiny_model, tmp_path, s3_endpoint, bucket):
    return make_settings(tmp_path / "home", tiny_model, storage_url=f"s3://{bucket}/{PREFIX}",
                         s3_endpoint_url=s3_endpoint)


@pytest.fixture
def keyed_s3(s3_settings):
    app = create_app(s3_settings, start_workers=False)
    service = app.state.service
    _, alice = create_key(service.repo.keys, "alice")
    bob_row, bob = create_key(service.repo.keys, "bob")
    with TestClient(app) as client:
        yield client, service, alice, bob, bob_row


def stored(endpoint: str, bucket_name: str, key: str) -> bytes:
    return boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket_name, Key=key)["Body"].read()


def test_an_upload_is_an_object_in_the_bucket_read_by_its_key_only_and_removed(keyed_s3, s3_settings, s3_endpoint,
                                                                                bucket, tiny_i2v):
    client, service, alice, bob, bob_row = keyed_s3
    home = s3_settings.home
    data = png(48, 32, seed=1)
    r = upload(client, data, "cat.png", token=alice)
    assert r.status_code == 201, r.text
    asset = r.json()
    key = f"{PREFIX}/assets/{asset['id']}.png"
    assert objects(s3_endpoint, bucket) == [key] and stored(s3_endpoint, bucket, key) == data
    assert not (home / "assets").exists()
    assert service.repo.assets.get_asset(asset["id"]).path == f"assets/{asset['id']}.png"  # the key, as with the local store
    assert client.get(f"/v1/assets/{asset['id']}", headers=bearer(alice)).json() == asset

    # Another key: a missing asset, word for word; it cannot name it in a job nor get its file.
    for r in (client.get(f"/v1/assets/{asset['id']}", headers=bearer(bob)),
              client.delete(f"/v1/assets/{asset['id']}", headers=bearer(bob))):
        assert r.status_code == 404 and r.json()["detail"] == f"no asset with id {asset['id']}"
    body = {"prompt": "a cat", "model": str(tiny_i2v), "image": asset["id"], **I2V}
    r = client.post("/v1/videos", json=body, headers=bearer(bob))
    assert r.status_code == 422 and loc_field(r) == "image" and "no uploaded asset" in r.text
    with pytest.raises(AssetNotFound):
        service.assets.asset_path(asset["id"], bob_row)
    assert objects(s3_endpoint, bucket) == [key]

    # Its key submits with it (checked in the bucket, nothing downloaded) and reads it back as a cached file.
    r = client.post("/v1/videos", json=body, headers=bearer(alice))
    assert r.status_code == 202 and r.json()["request"]["image"] == asset["id"], r.text
    cached = home / "cache" / "artifacts" / "assets" / f"{asset['id']}.png"
    assert not cached.exists()
    assert service.assets.asset_path(asset["id"]) == cached and cached.read_bytes() == data
    # The same bytes again with reuse (the web page): the same asset, no second object.
    alice_id = service.repo.assets.get_asset(asset["id"]).api_key_id
    assert service.assets.add_asset(data, "again.png", alice_id, reuse=True)["id"] == asset["id"]
    assert objects(s3_endpoint, bucket) == [key]

    assert client.delete(f"/v1/assets/{asset['id']}", headers=bearer(alice)).status_code == 204
    assert objects(s3_endpoint, bucket) == [] and not cached.exists()
    assert client.get(f"/v1/assets/{asset['id']}", headers=bearer(alice)).status_code == 404
    r = client.post("/v1/videos", json=body, headers=bearer(alice))
    assert r.status_code == 422 and "no uploaded asset" in r.text

    # Revoking a key's assets removes its objects and leaves the others'.
    mine = upload(client, png(seed=2), token=alice).json()
    upload(client, png(seed=3), token=bob)
    assert len(objects(s3_endpoint, bucket)) == 2
    assert service.assets.purge_key_assets(bob_row) == 1
    assert objects(s3_endpoint, bucket) == [f"{PREFIX}/assets/{mine['id']}.png"]


def test_an_object_gone_from_the_bucket_is_a_missing_asset(keyed_s3, s3_endpoint, bucket):
    client, service, alice, _, _ = keyed_s3
    asset = upload(client, png(seed=4), token=alice).json()
    boto3.client("s3", endpoint_url=s3_endpoint).delete_object(Bucket=bucket, Key=f"{PREFIX}/assets/{asset['id']}.png")
    r = client.post("/v1/videos", json={"prompt": "a cat", "image": asset["id"]}, headers=bearer(alice))
    assert r.status_code == 422 and loc_field(r) == "image" and "no uploaded asset with id" in r.text
    with pytest.raises(AssetNotFound):
        service.assets.asset_path(asset["id"])
    # reuse does not hand back an asset whose object is gone: a new one is stored
    again = service.assets.add_asset(png(seed=4), None, service.repo.assets.get_asset(asset["id"]).api_key_id, reuse=True)
    assert again["id"] != asset["id"] and objects(s3_endpoint, bucket) == [f"{PREFIX}/assets/{again['id']}.png"]


def test_an_image_to_video_job_reads_its_image_from_the_bucket(s3_settings, s3_endpoint, bucket, tiny_i2v):
    data = png(32, 32, seed=9)
    with TestClient(create_app(s3_settings)) as client:
        asset = upload(client, data).json()
        assert objects(s3_endpoint, bucket) == [f"{PREFIX}/assets/{asset['id']}.png"]
        body = {"prompt": "a red ball", "model": str(tiny_i2v), "image": asset["id"], **I2V}
        r = client.post("/v1/videos", json=body)
        assert r.status_code == 202, r.text
        done = wait_for(client, r.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        meta = client.get(f"/v1/videos/{done['id']}/metadata").json()
        assert meta["image"] == asset["id"] and meta["image_sha256"] == hashlib.sha256(data).hexdigest()
    home = s3_settings.home
    assert (home / "cache" / "artifacts" / "assets" / f"{asset['id']}.png").read_bytes() == data  # fetched
    assert not (home / "assets").exists()
    assert f"{PREFIX}/videos/{done['id']}/video.mp4" in objects(s3_endpoint, bucket)


def test_a_bucket_that_cannot_take_the_image_is_a_503_naming_it(keyed_s3, s3_endpoint, bucket):
    from t2v.store.artifacts import S3Artifacts

    client, service, alice, _, _ = keyed_s3
    kept = upload(client, png(seed=6), token=alice).json()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.delete_object(Bucket=bucket, Key=f"{PREFIX}/assets/{kept['id']}.png")
    s3.delete_bucket(Bucket=bucket)

    r = upload(client, png(seed=5), "dog.png", token=alice)  # the bucket is gone
    assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
    detail = r.json()["detail"]
    assert detail.startswith("could not store the image: the artifact store") and f"s3://{bucket}/{PREFIX}" in detail
    assert "NoSuchBucket" in detail or "does not exist" in detail
    assert detail.endswith("try again later")
    assert not (service.settings.home / "assets").exists()

    # An endpoint that does not answer: uploads and submits are 503s, a worker's read a passing failure
    # (OSError: the job is tried again later, not failed as the request's fault).
    service.files.store = S3Artifacts(bucket, PREFIX, endpoint_url="http://127.0.0.1:9")
    r = upload(client, png(seed=5), "dog.png", token=alice)
    assert r.status_code == 503 and "could not store the image" in r.text and "127.0.0.1:9" in r.text, r.text
    r = client.post("/v1/videos", json={"prompt": "a cat", "image": kept["id"]}, headers=bearer(alice))
    assert r.status_code == 503 and "could not read the image" in r.text, r.text
    with pytest.raises(OSError, match=f"image: could not read the uploaded asset {kept['id']}"):
        service.assets.image_resolver(None)(kept["id"])
    assert [a["id"] for a in [client.get(f"/v1/assets/{kept['id']}", headers=bearer(alice)).json()]] == [kept["id"]]
