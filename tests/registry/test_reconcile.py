"""The pure core: release by the holder's push, expiry on a simulated clock, idempotence."""

from __future__ import annotations

import random
from datetime import timedelta

from fedem.registry.policy import Policy
from fedem.registry.reconcile import commit_message, reconcile, repos_to_check

from ._helpers import T0, make_adapter, rev

# The generic tests' contributors publish under their GitHub login (the same-name fallback);
# the identity tests at the end use the explicit map.
SAME = Policy(identity_fallback="same-name")
MAPPED = Policy(identities={"alice": ("alice-hf", "alice-lab"), "bob": ("bob",)})


def _state(*adapters):
    return {a.name: a for a in adapters}


def test_holder_push_releases_and_records_the_hop():
    state = _state(make_adapter(holder="alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "r1", "alice", T0 + timedelta(minutes=40))]}
    new, events = reconcile(state, T0 + timedelta(hours=1), heads, SAME)
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
    new, events = reconcile(state, T0 + timedelta(hours=1), heads, SAME)
    assert new["seshu-hi"] is state["seshu-hi"] and events == []


def test_push_before_the_claim_does_not_release():
    state = _state(make_adapter(holder="alice"))
    heads = {
        "seshu-hi": [
            rev("seshu-hi", "old", "alice", T0 - timedelta(minutes=1)),
            rev("seshu-hi", "same", "alice", T0),
        ]
    }
    _, events = reconcile(state, T0 + timedelta(hours=1), heads, SAME)
    assert events == []


def test_login_match_is_case_insensitive():
    state = _state(make_adapter(holder="Alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "r1", "alice", T0 + timedelta(minutes=1))]}
    assert reconcile(state, T0 + timedelta(minutes=2), heads, SAME)[1][0].kind == "hop"


def test_expires_after_three_hours_on_a_simulated_clock(clock):
    state = _state(make_adapter(holder="alice"))
    clock.advance(hours=2, minutes=59, seconds=59)
    new, events = reconcile(state, clock.now(), {}, SAME)
    assert events == [] and new["seshu-hi"].lock.state == "held"
    clock.advance(seconds=1)
    new, events = reconcile(state, clock.now(), {}, SAME)
    assert [(e.kind, e.at) for e in events] == [("expired", "2026-11-28T12:00:00Z")]
    assert new["seshu-hi"].lock.state == "free" and new["seshu-hi"].hops == ()
    assert new["seshu-hi"].previous.reason == "expired"


def test_push_after_expiry_is_not_a_hop():
    state = _state(make_adapter(holder="alice"))
    heads = {"seshu-hi": [rev("seshu-hi", "late", "alice", T0 + timedelta(hours=3, minutes=1))]}
    new, events = reconcile(state, T0 + timedelta(hours=4), heads, SAME)
    assert [e.kind for e in events] == ["expired"] and new["seshu-hi"].hops == ()


def test_idempotent():
    state = _state(make_adapter("a", holder="alice"), make_adapter("b", holder="bob"), make_adapter("c"))
    heads = {"a": [rev("a", "r1", "alice", T0 + timedelta(minutes=5))]}
    now = T0 + timedelta(hours=5)
    once, events = reconcile(state, now, heads, SAME)
    assert len(events) == 2
    twice, again = reconcile(once, now, heads, SAME)
    assert again == [] and all(twice[n] is once[n] for n in once)
    later, events_later = reconcile(once, now + timedelta(days=3), heads, SAME)
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
        regular, _ = reconcile(regular, t, heads, SAME)
        t += timedelta(minutes=5)
    catch_up, _ = reconcile(state, end, heads, SAME)
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
        results.append(reconcile(_state(*shuffled), T0 + timedelta(hours=4), heads, SAME))
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
    new, events = reconcile(state, T0 + timedelta(hours=2, minutes=5), heads, SAME)
    assert new["seshu-hi"].hops[0].revision == "r1"
    msg = commit_message(events)
    assert msg.startswith("reconcile: 1 event\n\n- hop: seshu-hi by alice, revision r1")


def test_repos_to_check_only_held():
    a = make_adapter("a", holder="alice")
    b = make_adapter("b")
    assert repos_to_check(_state(a, b)) == ["a"]


# -- whose revision completes a lock: the policy's identity map ---------------------------------


def _hop_by(author, holder="alice", policy=MAPPED):
    state = _state(make_adapter(holder=holder))
    heads = {"seshu-hi": [rev("seshu-hi", "r1", author, T0 + timedelta(minutes=40))]}
    new, events = reconcile(state, T0 + timedelta(hours=1), heads, policy)
    return [e.kind for e in events], new["seshu-hi"]


def test_mapped_hub_account_completes_the_lock():
    """The hub username differs from the GitHub login: the map makes it the holder's hop."""
    assert _hop_by("alice-hf")[0] == ["hop"]
    assert _hop_by("ALICE-LAB")[0] == ["hop"], "hub names compare case-insensitively"
    kinds, adapter = _hop_by("alice-hf", holder="Alice")
    assert kinds == ["hop"] and adapter.hops[0].contributor == "Alice"


def test_hub_user_named_like_the_login_is_not_the_holder():
    """An unrelated hub account spelled like the holder's GitHub login releases nothing."""
    kinds, adapter = _hop_by("alice")
    assert kinds == [] and adapter.lock.holder == "alice"
    assert _hop_by("bob")[0] == [], "another login's hub account never completes alice's lock"


def test_unmapped_login_matches_nothing_without_the_fallback():
    assert _hop_by("carol", holder="carol")[0] == []
    assert _hop_by("carol", holder="carol", policy=Policy())[0] == []
    assert not Policy().has_hub_identity("carol") and MAPPED.has_hub_identity("ALICE")


def test_same_name_fallback_is_opt_in_and_never_overrides_the_map():
    both = Policy(identities={"alice": ("alice-hf",), "robert": ("bob",)}, identity_fallback="same-name")
    assert _hop_by("carol", holder="carol", policy=both)[0] == ["hop"]
    assert _hop_by("alice", policy=both)[0] == [], "alice is mapped: her login is not her hub name"
    assert _hop_by("bob", holder="bob", policy=both)[0] == [], "hub user bob is robert's"
    assert _hop_by("bob", holder="robert", policy=both)[0] == ["hop"]


def test_empty_or_unknown_author_never_matches():
    for policy in (MAPPED, SAME, Policy(identities={"unknown": ("unknown",)})):
        for author in ("", "unknown"):
            assert _hop_by(author, holder="unknown", policy=policy)[0] == [], (author, policy)
    assert _hop_by("alice-hf,alice")[0] == [], "a list of authors is not one mapped account"
