"""The service's seams: it talks to its store through protocols that declare exactly what it calls, and neither
JobService nor Repository forwards a name one of its parts owns (the caller reaches the part)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import get_type_hints

import pytest

from t2v.service import ports
from t2v.service.access import AccessService
from t2v.service.assets import AssetService
from t2v.service.batches import BatchService
from t2v.service.postjobs import PostService
from t2v.service.service import JobService
from t2v.service.steering import SteeringService
from t2v.store import Repository
from t2v.store.assets import Assets
from t2v.store.batches import Batches
from t2v.store.claims import Claims
from t2v.store.controls import Controls
from t2v.store.keys import Keys
from t2v.store.limits import Limits
from t2v.store.outbox import Outbox

SERVICE = Path(__file__).resolve().parents[2] / "src" / "t2v" / "service"

#: Each protocol and the store class that implements it.
IMPLEMENTED_BY = {
    ports.JobTable: Repository, ports.WebhookTable: Repository, ports.KeyTable: Keys, ports.ClaimTable: Claims,
    ports.LimitTable: Limits, ports.AssetTable: Assets, ports.OutboxTable: Outbox, ports.ControlTable: Controls,
    ports.BatchTable: Batches,
}


def declared(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if not name.startswith("_") and callable(value)}


def public_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if not name.startswith("_") and callable(value)}


def called_by_the_service() -> set[str]:
    """Every name the service's modules call as a method (``x.name(``), or pass as one (``x.name,``)."""
    source = "\n".join(path.read_text(encoding="utf-8") for path in SERVICE.rglob("*.py"))
    return set(re.findall(r"\.(\w+)\s*[(,)]", source))


@pytest.mark.parametrize("protocol", list(IMPLEMENTED_BY), ids=lambda p: p.__name__)
def test_the_store_implements_each_protocol_as_declared(protocol):
    cls = IMPLEMENTED_BY[protocol]
    for name in declared(protocol):
        assert name in public_methods(cls), f"{cls.__name__} has no {name}"
        want = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(protocol, name)).parameters.values()]
        have = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(cls, name)).parameters.values()]
        assert want == have, f"{protocol.__name__}.{name} is not {cls.__name__}.{name}"


@pytest.mark.parametrize("protocol", list(IMPLEMENTED_BY), ids=lambda p: p.__name__)
def test_each_protocol_declares_exactly_what_the_service_calls(protocol):
    called = called_by_the_service()
    assert declared(protocol) <= called, f"declared but never called: {sorted(declared(protocol) - called)}"
    others = set().union(*(declared(p) for p, cls in IMPLEMENTED_BY.items() if cls is IMPLEMENTED_BY[protocol]))
    missing = (public_methods(IMPLEMENTED_BY[protocol]) & called) - others
    assert not missing, f"the service calls {sorted(missing)} of {IMPLEMENTED_BY[protocol].__name__} undeclared"


def test_the_job_store_is_the_repository_with_its_parts(tmp_path):
    from t2v.store import open_database

    engine = open_database(f"sqlite:///{tmp_path / 't2v.db'}")
    try:
        repo = Repository(engine)
        parts = {name: hint for name, hint in get_type_hints(ports.JobStore).items() if name != "engine"}
        assert set(parts) == {"keys", "claims", "limits", "assets", "outbox", "controls", "batches"}
        for name, protocol in parts.items():
            assert isinstance(getattr(repo, name), IMPLEMENTED_BY[protocol]), name
        assert {ports.JobTable, ports.WebhookTable} <= set(ports.JobStore.__mro__)
    finally:
        engine.dispose()


@pytest.mark.parametrize("owner, parts", [
    (JobService, [AccessService, AssetService, PostService, SteeringService, BatchService]),
    (Repository, [Keys, Claims, Limits, Assets, Outbox, Controls, Batches]),
], ids=["JobService", "Repository"])
def test_no_facade_forwards_a_part_s_names(owner, parts):
    mine = {name for name in dir(owner) if not name.startswith("_")}
    for part in parts:
        shared = mine & {name for name in dir(part) if not name.startswith("_")}
        assert not shared, f"{owner.__name__} offers {sorted(shared)} of {part.__name__}: call the part"
