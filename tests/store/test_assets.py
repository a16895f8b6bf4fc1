"""The assets table (migration 0003) and the repository's Assets part, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import delete, inspect

from t2v.store import new_id
from t2v.store.tables import ApiKey


def add(repo, owner, sha="a" * 64):
    asset_id = new_id()
    return repo.assets.add_asset(asset_id=asset_id, api_key_id=owner, sha256=sha, filename="first.png",
                          content_type="image/png", size=123, width=32, height=16, path=f"assets/{asset_id}.png")


def test_assets_belong_to_their_key(repo, engine):
    assert "assets" in inspect(engine).get_table_names()
    alice = repo.keys.create_key("alice", "1" * 64, "t2v_aaaa").id
    bob = repo.keys.create_key("bob", "2" * 64, "t2v_bbbb").id
    mine, other, keyless = add(repo, alice), add(repo, bob, "b" * 64), add(repo, None)
    assert repo.assets.get_asset(mine.id) == mine and repo.assets.get_asset(mine.id, alice) == mine
    assert repo.assets.get_asset(mine.id, bob) is None and repo.assets.get_asset("01NOSUCHASSET0000000000000") is None
    assert mine.created_at.utcoffset().total_seconds() == 0
    assert repo.assets.find_asset(alice, "a" * 64) == mine and repo.assets.find_asset(None, "a" * 64) == keyless
    assert repo.assets.find_asset(bob, "a" * 64) is None
    assert repo.assets.delete_asset(mine.id, bob) is None and repo.assets.get_asset(mine.id) == mine
    assert repo.assets.delete_asset(mine.id, alice) == mine and repo.assets.get_asset(mine.id) is None
    add(repo, bob, "c" * 64)
    assert {r.sha256 for r in repo.assets.delete_key_assets(bob)} == {"b" * 64, "c" * 64}
    assert repo.assets.get_asset(other.id) is None and repo.assets.get_asset(keyless.id) == keyless
    extra = add(repo, alice)
    with engine.begin() as conn:  # a key row that goes takes its assets' rows with it
        conn.execute(delete(ApiKey.__table__).where(ApiKey.__table__.c.id == alice))
    assert repo.assets.get_asset(extra.id) is None
