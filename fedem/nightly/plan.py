"""What a night merges: the hops not yet merged, read against the checkpoint chain on the hub.

The hub is the source of truth. Every merge checkpoint's ``fedem.json`` lists, under
``nightly.merged``, each adapter revision it folded in and the registry hops that revision
carried. :func:`fedem.publish.history.read_history` walks the checkpoint chain and collects them;
:func:`plan_night` then compares that with the registry:

- a hop whose revision a published checkpoint lists but whose ``merged_into`` is unset is a
  *repair* (a nightly died after publishing and before marking): it is marked, never merged again;
- an adapter with unmerged hops is a *candidate*: its newest unmerged hop's revision, which
  carries the earlier ones (a relay chain is linear: each hop continues its parent);
- a candidate whose newest hop was rejected on this very checkpoint (``rejected_on``) waits
  for its next hop: it is not gated twice on the same base;
- nothing else is touched.

Pure functions over plain records, so the plan is tested without a hub, a git remote or a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from fedem.publish.history import History
from fedem.registry.model import Adapter


@dataclasses.dataclass(frozen=True)
class PlannedAdapter:
    """A candidate for tonight: the revision to gate and the unmerged hops it carries."""

    name: str
    hub_repo: str
    revision: str
    hops: tuple[str, ...]
    contributors: tuple[str, ...]  # of those hops, in order, once each
    languages: tuple[str, ...]
    arrived: str  # the first unmerged hop's time: the gate's arrival order


@dataclasses.dataclass(frozen=True)
class NightPlan:
    candidates: tuple[PlannedAdapter, ...]
    repairs: Mapping[str, Mapping[str, str]]  # adapter -> {hop revision: checkpoint revision}
    waiting: Mapping[str, str]  # adapter -> why its unmerged hops are not gated tonight


def plan_night(adapters: Mapping[str, Adapter], history: History) -> NightPlan:
    """Candidates (in arrival order) and repairs, from the registry's adapters and the hub's history."""
    candidates: list[PlannedAdapter] = []
    repairs: dict[str, dict[str, str]] = {}
    waiting: dict[str, str] = {}
    for name in sorted(adapters):
        adapter = adapters[name]
        open_hops = []
        for hop in adapter.hops:
            if hop.merged_into is not None:
                continue
            if hop.revision in history.merged_hops:
                repairs.setdefault(name, {})[hop.revision] = history.merged_hops[hop.revision]
            elif hop.revision not in history.merged_adapters:
                open_hops.append(hop)
        if not open_hops:
            continue
        if open_hops[-1].rejected_on == history.head.id:
            waiting[name] = (
                f"revision {open_hops[-1].revision[:12]} was rejected on this checkpoint; "
                "its next hop is gated"
            )
            continue
        contributors: list[str] = []
        for hop in open_hops:
            if hop.contributor not in contributors:
                contributors.append(hop.contributor)
        candidates.append(
            PlannedAdapter(
                name=name,
                hub_repo=adapter.hub_repo,
                revision=open_hops[-1].revision,
                hops=tuple(h.revision for h in open_hops),
                contributors=tuple(contributors),
                languages=tuple(adapter.spec.languages),
                arrived=open_hops[0].time,
            )
        )
    candidates.sort(key=lambda c: (c.arrived, c.name))
    return NightPlan(tuple(candidates), repairs, waiting)


Marks = Mapping[str, Mapping[str, str]]  # adapter -> {hop revision: checkpoint revision}


def marks(
    adapters: Mapping[str, Adapter], merged: Marks, rejected: Marks | None = None
) -> dict[str, Adapter]:
    """The adapters with ``merged_into`` (and ``rejected_on``) set on the given hops.

    Only unset marks are written: a hop already marked keeps its checkpoint (it is never
    merged twice), and adapters with nothing to mark are left out.
    """
    out = {}
    for name in sorted({*merged, *(rejected or {})}):
        adapter = adapters.get(name)
        if adapter is None:
            continue
        m, r = merged.get(name, {}), (rejected or {}).get(name, {})
        new = []
        for h in adapter.hops:
            if h.merged_into is None and h.revision in m:
                h = dataclasses.replace(h, merged_into=m[h.revision])
            elif h.merged_into is None and h.revision in r and h.rejected_on != r[h.revision]:
                h = dataclasses.replace(h, rejected_on=r[h.revision])
            new.append(h)
        if tuple(new) != adapter.hops:
            out[name] = dataclasses.replace(adapter, hops=tuple(new))
    return out


def format_plan(plan: NightPlan) -> str:
    """The lines ``--dry-run`` and the log print for a plan."""
    lines = []
    for name, hops in sorted(plan.repairs.items()):
        for hop, ckpt in hops.items():
            lines.append(f"repair: {name} hop {hop[:12]} is in checkpoint {ckpt[:12]}; mark merged_into")
    for c in plan.candidates:
        who = ", ".join(c.contributors)
        lines.append(
            f"candidate: {c.name}@{c.revision[:12]} ({len(c.hops)} hop{'s' if len(c.hops) != 1 else ''} "
            f"by {who}; targets {', '.join(c.languages) or 'none'})"
        )
    for name, why in sorted(plan.waiting.items()):
        lines.append(f"waiting: {name}: {why}")
    if not plan.candidates:
        lines.append("nothing new: no hop in the registry is waiting to be gated")
    return "\n".join(lines)
