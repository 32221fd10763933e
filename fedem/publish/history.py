"""The checkpoint chain's memory: which adapter revisions each merge checkpoint folded in.

Every merge checkpoint's ``fedem.json`` lists, under ``nightly.merged``, each adapter revision
it merged and the registry hops that revision carried. That record on the hub is the source of
truth: the registry's ``merged_into`` marks are derived from it (and repaired from it), and an
adapter following a new checkpoint is judged by it (:func:`follow`):

- **reset**: the adapter's revision was merged into a checkpoint on the way to the new base. Its
  update is in the base now, so its next hop starts from a zero delta there (continuing its
  weights would count the update twice);
- **rebased**: it was not merged; its next hop continues its weights on the new base.

Either way the new base must descend from the one the adapter was trained on. Nothing else
is a valid change of base.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from fedem import untrusted
from fedem.errors import AdapterRejected, HubError, ModelError
from fedem.hub import Hub, Revision
from fedem.names import PROVENANCE, is_revision_id
from fedem.publish.files import CHECKPOINT_MAX_TEXT_BYTES

NIGHTLY_KEY = "nightly"  # the section of a merge checkpoint's fedem.json this job writes


@dataclasses.dataclass(frozen=True)
class MergedEntry:
    """One adapter revision a checkpoint folded in, and the registry hops it carried."""

    adapter: str
    revision: str
    sha256: str
    hops: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "adapter": self.adapter,
            "revision": self.revision,
            "sha256": self.sha256,
            "hops": list(self.hops),
        }


@dataclasses.dataclass(frozen=True)
class History:
    """The checkpoint chain, newest first, and which checkpoint merged each hop revision."""

    chain: tuple[Revision, ...]
    merged_hops: Mapping[str, str]  # hop revision -> checkpoint revision that merged it
    merged_adapters: Mapping[str, str]  # adapter revision -> checkpoint revision
    # weights sha256 of every merged adapter -> the MergedEntry and the checkpoint that merged it
    merged_weights: Mapping[str, tuple[MergedEntry, str]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def head(self) -> Revision:
        return self.chain[0]


def merged_entries(record: Mapping, where: str) -> list[MergedEntry]:
    """The ``nightly.merged`` list of a checkpoint record (empty for a root or a CPT checkpoint)."""
    section = record.get(NIGHTLY_KEY)
    if section is None:
        return []
    items = section.get("merged") if isinstance(section, dict) else None
    if not isinstance(items, list):
        raise ModelError(f"{where}: {NIGHTLY_KEY}.merged must be a list")
    out = []
    for i, item in enumerate(items):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("adapter"), str)
            and is_revision_id(item.get("revision"))
            and isinstance(item.get("sha256"), str)
            and isinstance(item.get("hops"), list)
            and all(is_revision_id(h) for h in item["hops"])
        )
        if not ok:
            raise ModelError(f"{where}: {NIGHTLY_KEY}.merged[{i}]: expected adapter, revision, sha256, hops")
        out.append(MergedEntry(item["adapter"], item["revision"], item["sha256"], tuple(item["hops"])))
    return out


def read_hub_record(hub: Hub, repo: str, rev: Revision) -> dict:
    """A checkpoint revision's ``fedem.json``, read bounded from the hub (no weights fetched)."""
    where = f"{repo}@{rev.id[:12]}/{PROVENANCE}"
    raw = hub.read_file(repo, PROVENANCE, rev.id, max_bytes=CHECKPOINT_MAX_TEXT_BYTES)
    return untrusted.parse_json_object(raw, where, ModelError)


def read_history(hub: Hub, repo: str, head: Revision) -> History:
    """Walk from ``head`` to the root through the hub's parents, collecting what was merged."""
    by_id = {r.id: r for r in hub.revisions(repo)}
    chain: list[Revision] = []
    hops: dict[str, str] = {}
    adapters: dict[str, str] = {}
    weights: dict[str, tuple[MergedEntry, str]] = {}
    rev: Revision | None = head
    while rev is not None:
        if len(chain) > len(by_id):
            raise HubError(f"checkpoint repo {repo!r}: its parent links form a cycle")
        chain.append(rev)
        for entry in merged_entries(read_hub_record(hub, repo, rev), f"{repo}@{rev.id[:12]}"):
            adapters.setdefault(entry.revision, rev.id)
            weights.setdefault(entry.sha256, (entry, rev.id))
            for h in entry.hops:
                hops.setdefault(h, rev.id)
        if rev.parent is None:
            break
        if rev.parent not in by_id:
            raise HubError(f"checkpoint {repo}@{rev.id[:12]}: its parent {rev.parent[:12]} is not on the hub")
        rev = by_id[rev.parent]
    return History(tuple(chain), hops, adapters, weights)


def _between(history: History, old_base: str) -> list[str]:
    """Checkpoints after ``old_base`` up to the head, newest first; HubError if not an ancestor."""
    ids = [r.id for r in history.chain]
    if old_base not in ids:
        raise HubError(f"checkpoint {old_base[:12]} is not an ancestor of {history.head.id[:12]}")
    return ids[: ids.index(old_base)]


@dataclasses.dataclass(frozen=True)
class Follow:
    """How an adapter revision moves from the checkpoint it was trained on to a newer one."""

    kind: Literal["reset", "rebased"]
    repo: str  # the checkpoint repo
    source: str  # the checkpoint revision the adapter was trained on
    onto: str  # the new checkpoint revision
    merged_into: str | None = None  # reset: the checkpoint that merged the adapter's revision

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        if self.kind == "reset":
            return (
                f"reset after the merge into {self.repo}@{self.merged_into[:12]}: "  # type: ignore[index]
                f"starting from a zero delta on {self.onto[:12]}"
            )
        return f"rebased from {self.repo}@{self.source[:12]} onto {self.onto[:12]}, continuing its weights"


def follow(history: History, repo: str, adapter_revision: str, source: str) -> Follow:
    """The one valid transition of ``adapter_revision`` (trained on ``source``) to ``history.head``.

    AdapterRejected (one line) when ``source`` is not an ancestor of the head.
    """
    try:
        later = _between(history, source)
    except HubError:
        raise AdapterRejected(
            f"the adapter was trained on checkpoint {repo}@{source[:12]}, which is not an ancestor of "
            f"{repo}@{history.head.id[:12]}; only a newer checkpoint of the same chain can be followed"
        ) from None
    if not later:
        raise AdapterRejected(f"the adapter is already on {repo}@{source[:12]}: nothing to follow")
    merged = history.merged_adapters.get(adapter_revision)
    if merged is not None and merged in later:
        return Follow("reset", repo, source, history.head.id, merged)
    return Follow("rebased", repo, source, history.head.id)


def follow_from_record(raw: object, where: str) -> Follow:
    """A ``follow`` object as recorded in an adapter's ``fedem.json``; AdapterRejected if malformed."""
    ok = (
        isinstance(raw, dict)
        and raw.get("kind") in ("reset", "rebased")
        and isinstance(raw.get("repo"), str)
        and is_revision_id(raw.get("source"))
        and is_revision_id(raw.get("onto"))
        and (raw.get("merged_into") is None or is_revision_id(raw.get("merged_into")))
        and (raw.get("kind") == "rebased") == (raw.get("merged_into") is None)
        and set(raw) <= {"kind", "repo", "source", "onto", "merged_into"}
    )
    if not ok:
        raise AdapterRejected(
            f"{where}: follow: expected kind reset|rebased, repo, source, onto, merged_into"
        )
    return Follow(raw["kind"], raw["repo"], raw["source"], raw["onto"], raw.get("merged_into"))
