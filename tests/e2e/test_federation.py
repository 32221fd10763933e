"""The house standing: two contributors relay one adapter through the whole loop, CLI only.

claim (PR branch) → check-claim --merge (server) → finetune --hub → push → reconcile releases
the lock and records the hop → the next contributor claims, continues and pushes → lineage.
Real git (a bare remote), a real file:// hub, tiny real training; nothing mocked.
"""

from __future__ import annotations

import pytest

from ._world import claim, fedem, git, make_world, reconcile, registry_file
from ._world import hop as _hop

TINY_RUN = (
    "--set train.steps=4 --set train.warmup_steps=1 --set train.batch_size=4 --set data.block_size=64 "
    '--set data.sources=[{"embedded":"te"}]'
)


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def hop(world, tiny_base, login, monkeypatch, *, new):
    return _hop(world, tiny_base, login, monkeypatch, new=new, run=TINY_RUN)


def test_two_contributors_relay_one_adapter_through_the_whole_loop(world, tiny_base, monkeypatch):
    claim(world, "alice")
    assert registry_file(world).lock.holder == "alice"
    # bob cannot take it while alice holds it
    with pytest.raises(AssertionError, match="held"):
        claim(world, "bob")

    hop(world, tiny_base, "alice", monkeypatch, new=True)
    out = reconcile(world)
    assert "hop" in out, out
    after_alice = registry_file(world)
    assert after_alice.lock.holder is None
    assert [h.contributor for h in after_alice.hops] == ["alice"]

    claim(world, "bob")
    hop(world, tiny_base, "bob", monkeypatch, new=False)
    reconcile(world)
    final = registry_file(world)
    assert final.lock.holder is None and [h.contributor for h in final.hops] == ["alice", "bob"]
    assert final.hops[1].revision != final.hops[0].revision
    head = git(world["remote"], "rev-parse", "registry")
    assert reconcile(world).strip() == "nothing to change"
    assert git(world["remote"], "rev-parse", "registry") == head, "an idle reconcile makes no commit"

    lineage = fedem("lineage", "seshu-te", "--hub", world["hub"])
    assert lineage.count("alice") >= 1 and lineage.count("bob") >= 1
    status = fedem("registry", "status", "--repo", world["tmp"] / "status.git", "--remote", world["remote"])
    row = next(line.split() for line in status.splitlines() if line.startswith("seshu-te"))
    assert row[1] == "free" and final.hops[1].revision[:8] in " ".join(row)
