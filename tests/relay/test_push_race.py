"""Two contributors push hops trained on the same parent at once: one wins, one conflicts, nothing is lost.

Run on both backends: file:// (flock + HEAD compare-and-swap) and hf:// (the real HfApi over
loopback HTTP to fedem.testing.fakehub, whose commit endpoint checks parent_commit).
"""

from __future__ import annotations

import json
import threading

import pytest

from fedem.adapter import validate_adapter
from fedem.errors import ConflictError
from fedem.relay import push_adapter

from .conftest import copy_adapter, edit_json, one_line, rewrite_weights


def _hop(adapter_pkg, dst, parent_id, scale, contributor):
    """A child of ``parent_id`` with its own weights, as a relay hop would leave it."""
    folder = copy_adapter(adapter_pkg, dst)
    rewrite_weights(folder, lambda t: {k: v * scale for k, v in t.items()})
    edit_json(
        folder,
        "fedem.json",
        lambda m: m.update(contributor=contributor, parent={"repo": "demo", "revision": parent_id}),
    )
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_push_race_one_wins_one_conflicts(hubs, adapter_pkg, tmp_path, monkeypatch):
    monkeypatch.delenv("FEDEM_AUTHOR", raising=False)
    root = push_adapter(hubs("alice"), "demo", adapter_pkg)
    folders = {
        "alice": _hop(adapter_pkg, tmp_path / "alice", root.id, 1.5, "alice"),
        "bob": _hop(adapter_pkg, tmp_path / "bob", root.id, 0.5, "bob"),
    }
    before = {who: _snapshot(f) for who, f in folders.items()}
    clients = {who: hubs(who) for who in folders}  # separate clients, as on two machines
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def push(who):
        barrier.wait()
        try:
            outcomes[who] = push_adapter(clients[who], "demo", folders[who])
        except ConflictError as err:
            outcomes[who] = err

    threads = [threading.Thread(target=push, args=(who,)) for who in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    winners = [who for who, o in outcomes.items() if not isinstance(o, Exception)]
    losers = [who for who, o in outcomes.items() if isinstance(o, ConflictError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    winner, loser = winners[0], losers[0]
    won = outcomes[winner]
    assert won.parent == root.id and won.author == winner
    msg = str(outcomes[loser])
    assert "\n" not in msg
    assert f"its head is now {won.id[:12]} by {winner} at " in msg and "UTC" in msg
    assert "untouched" in msg and "pull the new head" in msg and "train again" in msg

    # Nothing lost: both local folders byte for byte as before, the winner's revision downloadable and valid.
    assert {who: _snapshot(f) for who, f in folders.items()} == before
    hub = hubs("carol")
    assert [r.id for r in hub.revisions("demo")] == [won.id, root.id]
    dl = hub.download("demo", won.id, tmp_path / "dl")
    assert validate_adapter(dl, name="demo").contributor == winner
    assert (dl / "adapter_model.safetensors").read_bytes() == before[winner]["adapter_model.safetensors"]

    # The loser can still publish after re-basing on the new head (here: explicitly, as a test shortcut).
    edit_json(folders[loser], "fedem.json", lambda m: m["parent"].update(revision=won.id))
    again = push_adapter(hub, "demo", folders[loser])
    assert again.parent == won.id


def test_fresh_push_onto_a_taken_repo_conflicts(hubs, adapter_pkg, tmp_path):
    hub = hubs("alice")
    first = push_adapter(hub, "demo", adapter_pkg)
    second = rewrite_weights(
        copy_adapter(adapter_pkg, tmp_path / "b"), lambda t: {k: -v for k, v in t.items()}
    )
    with pytest.raises(ConflictError) as err:
        push_adapter(hubs("bob"), "demo", second)
    assert f"its head is now {first.id[:12]}" in one_line(err) and "not your parent (none)" in one_line(err)
    # re-pushing the same folder says it is already there
    with pytest.raises(ConflictError) as err:
        push_adapter(hub, "demo", adapter_pkg)
    assert "already published as its head" in one_line(err)
    assert (
        json.loads(hub.read_file("demo", "fedem.json"))["weights_sha256"]
        != json.loads((second / "fedem.json").read_text())["weights_sha256"]
    )
