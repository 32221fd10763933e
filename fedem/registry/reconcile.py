"""The reconciler's pure core: ``reconcile(state, now, hub_heads, policy) -> (new_state, events)``.

For every held lock it looks at the hub revisions of the adapter's repo:

* the holder's first revision after the claim, and no later than the lock's expiry, is a
  completed hop: the hop is recorded and the lock released at the revision's hub time. A
  revision is the holder's only when its hub author is one of the holder's hub identities in
  the policy (:meth:`~fedem.registry.policy.Policy.is_hub_identity`): the lock holder is a
  GitHub login, the author a hub account, and equal spellings prove nothing;
* otherwise, once ``now`` reaches ``until``, the lock expires at ``until``.

Everything is computed from timestamps (lock times stamped by the server, revision times
from the hub), never from when or how often the cron ran, so a run after a skipped hour
gives the same state as runs every 5 minutes would have. A second run on its own output
changes nothing. Nothing on the hub is ever touched: an expired holder's work stays where
it is, only the lock ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from fedem.clock import as_utc, format_time
from fedem.hub.base import Revision
from fedem.registry.model import FREE, Adapter, Hop, Previous
from fedem.registry.policy import Policy


@dataclasses.dataclass(frozen=True)
class Event:
    """One change the reconciler made; ``str(event)`` is the line in the commit message."""

    kind: Literal["hop", "expired"]
    adapter: str
    holder: str
    at: str  # when the lock ended (hub time of the revision, or the lock's until)
    revision: str | None = None

    def __str__(self) -> str:
        if self.kind == "hop":
            return (
                f"hop: {self.adapter} by {self.holder}, revision {self.revision} at {self.at}; lock released"
            )
        return f"expired: {self.adapter} held by {self.holder}, lock ended at {self.at}"


def _first_hop(adapter: Adapter, revisions: Sequence[Revision], policy: Policy) -> Revision | None:
    lock = adapter.lock
    since, until = lock.since_at, lock.until_at
    best: Revision | None = None
    for rev in revisions:
        if not policy.is_hub_identity(lock.holder, rev.author):
            continue
        t = as_utc(rev.time)
        # Strictly after the claim: a revision from before the lock is not this hop's work.
        if since < t <= until and (
            best is None or t < as_utc(best.time) or (t == as_utc(best.time) and rev.id < best.id)
        ):
            best = rev
    return best


def reconcile_one(
    adapter: Adapter, now: datetime, revisions: Sequence[Revision], policy: Policy
) -> tuple[Adapter, Event | None]:
    """Reconcile one adapter; returns it unchanged (the same object) and None when nothing is due."""
    lock = adapter.lock
    if lock.state != "held":
        return adapter, None
    holder = lock.holder or ""
    rev = _first_hop(adapter, revisions, policy)
    if rev is not None:
        at = format_time(rev.time)
        hop = Hop(contributor=holder, revision=rev.id, time=at, claimed_at=lock.since or at)
        prev = Previous(holder=holder, since=lock.since or at, ended=at, reason="hop")
        new = dataclasses.replace(adapter, lock=FREE, previous=prev, hops=(*adapter.hops, hop))
        return new, Event("hop", adapter.name, holder, at, rev.id)
    if now >= lock.until_at:
        at = lock.until or format_time(now)
        prev = Previous(holder=holder, since=lock.since or at, ended=at, reason="expired")
        return dataclasses.replace(adapter, lock=FREE, previous=prev), Event(
            "expired", adapter.name, holder, at
        )
    return adapter, None


def reconcile(
    state: Mapping[str, Adapter],
    now: datetime,
    hub_heads: Mapping[str, Sequence[Revision]],
    policy: Policy,
) -> tuple[dict[str, Adapter], list[Event]]:
    """Release locks whose holder published, expire locks past their TTL.

    ``state`` maps adapter names to adapters; ``hub_heads`` maps hub repo names to their
    revisions (any order; repos with no lock to check may be missing); ``policy`` says which
    hub accounts belong to which GitHub login (required: without it no hop could be trusted,
    and a silent default would turn every hop into an expiry). Unchanged adapters are
    returned as the same objects, so callers write only what changed. Events come sorted by
    adapter name: the same inputs always give the same output.
    """
    now = as_utc(now)
    new_state: dict[str, Adapter] = {}
    events: list[Event] = []
    for name in sorted(state):
        adapter = state[name]
        if adapter.lock.state == "held":
            adapter, event = reconcile_one(adapter, now, hub_heads.get(adapter.hub_repo, ()), policy)
            if event is not None:
                events.append(event)
        new_state[name] = adapter
    return new_state, events


def repos_to_check(state: Mapping[str, Adapter]) -> list[str]:
    """The hub repos whose revisions :func:`reconcile` needs: those of held locks only."""
    return sorted({a.hub_repo for a in state.values() if a.lock.state == "held"})


def commit_message(events: Sequence[Event], title: str = "reconcile") -> str:
    """``reconcile: 2 events`` and one line per event."""
    lines = [f"{title}: {len(events)} event{'s' if len(events) != 1 else ''}", ""]
    lines += [f"- {e}" for e in events]
    return "\n".join(lines) + "\n"
