"""The pure core: release by the holder's push, expiry on a simulated clock, idempotence."""

from __future__ import annotations

import random
from datetime import timedelta

from fedem.registry.reconcile import commit_message, reconcile, repos_to_check

from ._helpers import T0, make_adapter, rev


def _state(*adapters):
    return {a.name: a for a in adapters}


def test_holder_push_releases_and_records_the_hop():
    state = _state(make_adapter(holder="alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "r1", "alice", T0 + timedelta(minutes=40))]}
    new, events = reconcile(state, T0 + timedelta(hours=1), heads)
    a = new["seshu-hi"]
    assert a.lock.state == "free"
    assert [(h.contributor, h.revision, h.time, h.claimed_at, h.merged_into) for h in a.hops] == [
        ("alice", "r1", "2026-11-28T09:40:00Z", "2026-11-28T09:00:00Z", None)
    ]
    assert (a.previous.holder, a.previous.reason, a.previous.ended) == (
        "alice",
        "hop",
        "2026-11-28T09:40:00Z",
    )
    assert [(e.kind, e.adapter, e.revision) for e in events] == [("hop", "seshu-hi", "r1")]


def test_someone_elses_push_does_not_release():
    state = _state(make_adapter(holder="alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "r1", "mallory", T0 + timedelta(minutes=40))]}
    new, events = reconcile(state, T0 + timedelta(hours=1), heads)
    assert new["seshu-hi"] is state["seshu-hi"] and events == []


def test_push_before_the_claim_does_not_release():
    state = _state(make_adapter(holder="alice"))
    heads = {
        "seshu-hi": [
            rev("seshu-hi", "old", "alice", T0 - timedelta(minutes=1)),
            rev("seshu-hi", "same", "alice", T0),
        ]
    }
    _, events = reconcile(state, T0 + timedelta(hours=1), heads)
    assert events == []


def test_login_match_is_case_insensitive():
    state = _state(make_adapter(holder="Alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "r1", "alice", T0 + timedelta(minutes=1))]}
    assert reconcile(state, T0 + timedelta(minutes=2), heads)[1][0].kind == "hop"


def test_expires_after_three_hours_on_a_simulated_clock(clock):
    state = _state(make_adapter(holder="alice"))
    clock.advance(hours=2, minutes=59, seconds=59)
    new, events = reconcile(state, clock.now(), {})
    assert events == [] and new["seshu-hi"].lock.state == "held"
    clock.advance(seconds=1)
    new, events = reconcile(state, clock.now(), {})
    assert [(e.kind, e.at) for e in events] == [("expired", "2026-11-28T12:00:00Z")]
    assert new["seshu-hi"].lock.state == "free" and new["seshu-hi"].hops == ()
    assert new["seshu-hi"].previous.reason == "expired"


def test_push_after_expiry_is_not_a_hop():
    state = _state(make_adapter(holder="alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "late", "alice", T0 + timedelta(hours=3, minutes=1))]}
    new, events = reconcile(state, T0 + timedelta(hours=4), heads)
    assert [e.kind for e in events] == ["expired"] and new["seshu-hi"].hops == ()


def test_idempotent():
    state = _state(make_adapter("a", holder="alice"), make_adapter("b", holder="bob"), make_adapter("c"))
    heads = {"a": [rev("a", "r1", "alice", T0 + timedelta(minutes=5))]}
    now = T0 + timedelta(hours=5)
    once, events = reconcile(state, now, heads)
    assert len(events) == 2
    twice, again = reconcile(once, now, heads)
    assert again == [] and all(twice[n] is once[n] for n in once)
    later, events_later = reconcile(once, now + timedelta(days=3), heads)
    assert events_later == []


def test_catch_up_equals_regular_runs():
    """A run after a skipped hour gives the state runs every 5 minutes would have given."""
    state = _state(
        *(make_adapter(f"a{i}", holder=f"user{i}", since=T0 + timedelta(minutes=7 * i)) for i in range(12))
    )
    heads = {
        f"a{i}": [
            rev(f"a{i}", f"r{i}", f"user{i}", T0 + timedelta(minutes=7 * i + 20 * i)),
            rev(f"a{i}", f"x{i}", f"user{i}", T0 + timedelta(hours=9)),
        ]
        for i in range(0, 12, 2)
    }
    end = T0 + timedelta(hours=6)
    regular, t = state, T0
    while t <= end:
        regular, _ = reconcile(regular, t, heads)
        t += timedelta(minutes=5)
    catch_up, _ = reconcile(state, end, heads)
    assert catch_up == regular


def test_deterministic_and_sorted():
    adapters = [make_adapter(f"n{i:02d}", holder=f"u{i}") for i in range(20)]
    heads = {
        f"n{i:02d}": [rev(f"n{i:02d}", f"r{i}", f"u{i}", T0 + timedelta(minutes=i + 1))]
        for i in range(0, 20, 3)
    }
    results = []
    for seed in range(3):
        shuffled = adapters[:]
        random.Random(seed).shuffle(shuffled)
        results.append(reconcile(_state(*shuffled), T0 + timedelta(hours=4), heads))
    assert results[0] == results[1] == results[2]
    names = [e.adapter for e in results[0][1]]
    assert names == sorted(names)


def test_first_hop_wins_and_messages():
    state = _state(make_adapter(holder="alice"))
    heads = {
        "seshu-hi": [
            rev("seshu-hi", "r2", "alice", T0 + timedelta(hours=2)),
            rev("seshu-hi", "r1", "alice", T0 + timedelta(hours=1)),
        ]
    }
    new, events = reconcile(state, T0 + timedelta(hours=2, minutes=5), heads)
    assert new["seshu-hi"].hops[0].revision == "r1"
    msg = commit_message(events)
    assert msg.startswith("reconcile: 1 event\n\n- hop: seshu-hi by alice, revision r1")


def test_repos_to_check_only_held():
    a = make_adapter("a", holder="alice")
    b = make_adapter("b")
    assert repos_to_check(_state(a, b)) == ["a"]
