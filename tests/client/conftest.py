"""A real ``t2v serve`` (a subprocess on a free loopback port) over the tiny model, with API keys on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from t2v.desktop.local import free_port  # noqa: F401 - the tests' free loopback port

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    from tests.servers import make_keys, serve

    home = tmp_path_factory.mktemp("client-home")
    key, slow_key = make_keys(home, ("main", {}), ("slow", {"rate": "1/hour"}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp()) as s:
        yield SimpleNamespace(url=s.url, key=key, slow_key=slow_key, model=str(tiny_model), name=tiny_model.name, home=home)
