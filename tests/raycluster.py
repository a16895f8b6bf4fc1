"""A local Ray cluster on this machine for a test (Ray binds the machine's own address; it rewrites 127.0.0.1 to
it, so nothing leaves the machine): a head node without GPUs and two worker nodes with one logical
GPU each (Ray assigns them; torch finds no CUDA and the code falls back to the CPU), so actors placed with
``num_gpus=1`` land one per worker node and a node can be removed mid-job."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from tests.s3server import S3_ENV

NODE = {"num_cpus": 1, "num_gpus": 1}


@pytest.fixture(scope="module")
def ray_cluster():
    """One cluster for a test file (starting one takes about 6 s of the machine): each test's processes and
    actors end with the test. A test that removes or adds nodes goes last in its file, and reads the nodes it has
    from ``nodes``."""
    pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # The nodes' processes (and so the actors) inherit this environment: no usage reports, no hub, the S3
        # test credentials; everything else an actor needs comes in its settings.
        for k, v in {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", **S3_ENV}.items():
            monkeypatch.setenv(k, v)
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
        nodes = [cluster.add_node(**NODE) for _ in range(2)]
        cluster.wait_for_nodes()
        try:
            yield SimpleNamespace(address=cluster.address, cluster=cluster, nodes=nodes)
        finally:
            cluster.shutdown()
            os.environ.pop("RAY_ADDRESS", None)


def node_of(ray_cluster, node_id: str):
    """The worker node (a ray._private.node.Node) with this hex id."""
    return next(n for n in ray_cluster.nodes if n.node_id == node_id)
