"""moto's S3 server on a loopback port for the test session (real HTTP through boto3), and fresh buckets."""

from __future__ import annotations

import os

import pytest

S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(monkeypatch):
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    return dict(S3_ENV)


@pytest.fixture
def bucket(s3_endpoint, s3_env):
    """A new, empty bucket; its name."""
    import boto3

    name = f"t2v-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def objects(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    return sorted(o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                  for o in page.get("Contents", []))


def settled_objects(endpoint: str, bucket: str, expected: list[str], prefix: str = "", timeout: float = 30) -> list[str]:
    """The bucket's keys once they are ``expected``, or as they are after ``timeout`` seconds: a finished job's
    checkpoint is deleted just after the job is marked done (by its worker, or by any process's janitor)."""
    import time

    deadline = time.time() + timeout
    while (keys := objects(endpoint, bucket, prefix)) != expected and time.time() < deadline:
        time.sleep(0.3)
    return keys
