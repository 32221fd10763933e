"""The data cursor: which training blocks a checkpoint chain has consumed, so CPT never replays.

**Semantics.** For each source (by its name in ``data.sources``), the cursor of a checkpoint
says: *the source's first D documents hash to H, and of the training blocks packed from them,
the first B were trained on* (:class:`fedem.provenance.SourceCursor`). Blocks are numbered as
:func:`fedem.data.pack` makes them at the cursor's ``block_size`` from the documents left after
the held-out split at its ``heldout_fraction`` (a per-document text hash). Packing is
prefix-stable: appending documents to a source leaves its first blocks exactly as they were.
So a source that only *grew* continues at block B, and a source whose first D documents
changed (edited, reordered, shrunk) is refused, naming the source; give changed data a new
source name to train on it as new data. Sources the cursor does not know start at block 0;
sources it knows but this run does not use are carried over unchanged.

**Within a run**, each source's share of the batch draws follows the mixture over its
*remaining* blocks, drawn without replacement: the run consumes, per source, the next c_i
blocks (B .. B+c_i-1), visited in a seeded random order, and the new cursor says B+c_i. When
the new data is less than the step budget needs, the run trains fewer steps; with less than one
step's worth it trains nothing (and publishes nothing).

**Where it lives.** CPT writes the cursor into its checkpoint's ``fedem.json`` (``cursor``).
A checkpoint without one (a nightly merge need not copy it) inherits its parent's: the chain is
walked back to the first record that has one, or to the root. A root is a pretrain output, and
pretraining sampled its sources with replacement for as many steps as it liked, so its cursor
counts every training block of each of its sources as consumed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np

from fedem import untrusted
from fedem.data.dataset import PackedData
from fedem.data.mixture import mixture_probs
from fedem.data.sources import load_documents
from fedem.data.spec import DataSpec
from fedem.errors import ConfigError, DataError, ModelError
from fedem.hub import Hub, Revision
from fedem.names import PROVENANCE
from fedem.provenance import DataCursor, ModelRecord, SourceCursor, get_path
from fedem.publish.files import CHECKPOINT_MAX_TEXT_BYTES


def documents_sha256(docs: Sequence[str]) -> str:
    """The hash of a document list, as :class:`fedem.data.SourceStats` records it (a test keeps
    the two equal): each document's UTF-8 length (8 bytes, little-endian), then its bytes."""
    h = hashlib.sha256()
    for d in docs:
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def root_cursor(record: ModelRecord, where: str) -> DataCursor:
    """The cursor a root (pretrain) record implies: every training block of its sources consumed."""
    block_size = get_path(record.data, "block_size")
    fraction = get_path(record.config, "data.heldout_fraction")
    sources = get_path(record.data, "sources")
    raw = {"version": 1, "block_size": block_size, "heldout_fraction": fraction, "sources": {}}
    if isinstance(sources, list):
        for s in sources:
            if not isinstance(s, dict) or not isinstance(s.get("name"), str):
                raise ModelError(f"{where}: data.sources holds an entry without a name")
            raw["sources"][s["name"]] = {
                "documents": s.get("documents"),
                "documents_sha256": s.get("sha256"),
                "blocks": s.get("train_blocks"),
            }
    return DataCursor.from_dict(raw, f"{where}: the cursor implied by its data record")


def find_cursor(hub: Hub, repo: str, head: Revision) -> tuple[DataCursor, Revision]:
    """The cursor in force at ``head``, and the revision whose record holds (or implies) it."""
    by_id = {r.id: r for r in hub.revisions(repo)}
    rev: Revision | None = head
    seen = set()
    while rev is not None and rev.id not in seen:
        seen.add(rev.id)
        where = f"{repo}@{rev.id[:12]}/{PROVENANCE}"
        raw = hub.read_file(repo, PROVENANCE, rev.id, max_bytes=CHECKPOINT_MAX_TEXT_BYTES)
        record = ModelRecord.from_dict(untrusted.parse_json_object(raw, where, ModelError))
        if record.cursor is not None:
            return record.cursor, rev
        if record.parent is None:
            return root_cursor(record, where), rev
        rev = by_id.get(rev.parent) if rev.parent else None
    raise ModelError(f"{repo} on {hub.url}: the checkpoint chain from {head.id[:12]} reaches no root record")


@dataclasses.dataclass(frozen=True)
class SourcePlan:
    """One training source in this run: blocks already consumed, and how many there are now."""

    name: str
    start: int  # the first block not yet trained on
    blocks: int  # training blocks the source packs to now
    take: int = 0  # blocks this run consumes (B .. B+take-1)

    @property
    def remaining(self) -> int:
        return self.blocks - self.start


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a CPT run trains on: per source, from where and how many; the steps that fit."""

    sources: tuple[SourcePlan, ...]
    steps: int  # 0: nothing new to train on
    budget: int  # the configured step budget
    draws_per_step: int

    @property
    def remaining(self) -> int:
        return sum(s.remaining for s in self.sources)


def check_compatible(cursor: DataCursor, spec: DataSpec, field: str = "data") -> None:
    """Block numbers mean the same blocks only at the cursor's block size and held-out split."""
    if spec.block_size != cursor.block_size:
        raise ConfigError(
            f"{field}.block_size: {spec.block_size}, but the checkpoint's data cursor counts "
            f"{cursor.block_size}-byte blocks; use {cursor.block_size}"
        )
    if spec.heldout_fraction != cursor.heldout_fraction:
        raise ConfigError(
            f"{field}.heldout_fraction: {spec.heldout_fraction}, but the checkpoint's data cursor was "
            f"split at {cursor.heldout_fraction}; use {cursor.heldout_fraction}"
        )


def starts(cursor: DataCursor, spec: DataSpec, data: PackedData, where: str) -> list[int]:
    """Per source of ``spec``, the first block not yet consumed; refuses a source that changed.

    A source the cursor knows is re-read to check that its first D documents are the ones the
    chain trained on (the documents' hash; nothing else proves the block numbers still mean the
    same text)."""
    check_compatible(cursor, spec)
    out = []
    for src, stats in zip(spec.sources, data.stats, strict=True):
        known = cursor.sources.get(src.name)
        if known is None:
            out.append(0)
            continue
        docs = load_documents(src) if stats.documents >= known.documents else []
        if len(docs) < known.documents or documents_sha256(docs[: known.documents]) != known.documents_sha256:
            raise DataError(
                f"data.sources {src.name}: its first {known.documents} documents are not the ones {where} "
                "trained on (the source changed, not only grew), so its data cursor cannot continue it; "
                "give the changed data a new source name to train on it as new data"
            )
        if known.blocks > stats.train_blocks:
            raise DataError(
                f"data.sources {src.name}: the cursor is at block {known.blocks} of {stats.train_blocks}"
            )
        out.append(known.blocks)
    return out


def plan(
    cursor: DataCursor, spec: DataSpec, data: PackedData, budget: int, draws_per_step: int, where: str
) -> Plan:
    """Where each source starts, and how many steps of new data the budget gets (<= ``budget``)."""
    first = starts(cursor, spec, data, where)
    srcs = tuple(
        SourcePlan(s.name, b, st.train_blocks)
        for s, st, b in zip(spec.sources, data.stats, first, strict=True)
    )
    steps = min(budget, sum(s.remaining for s in srcs) // draws_per_step)
    return Plan(srcs, steps, budget, draws_per_step)


def draw(plan: Plan, spec: DataSpec, seed: int) -> tuple[np.ndarray, Plan]:
    """The run's (source, block) draws, (steps·draws_per_step, 2), each block at most once.

    Sources follow the mixture over their remaining blocks (``data.temperature``, weights); a
    source that runs out drops out and the rest are renormalised. Within a source the draws
    take its next blocks in a seeded random order. Returns the draws and the plan with ``take``.
    """
    total = plan.steps * plan.draws_per_step
    remaining = np.array([s.remaining for s in plan.sources], dtype=np.int64)
    weights = [s.weight for s in spec.sources]
    rng = np.random.default_rng(seed)
    src = np.full(total, -1, dtype=np.int64)
    todo = np.arange(total)
    counts = np.zeros(len(remaining), dtype=np.int64)
    while len(todo):  # terminates: total <= remaining.sum(), and each pass fills a source or finishes
        room = remaining - counts
        probs = mixture_probs(np.maximum(room, 0), weights, spec.temperature)
        src[todo] = rng.choice(len(room), size=len(todo), p=probs)
        todo = np.empty(0, dtype=np.int64)
        for s in range(len(remaining)):
            idx = np.nonzero(src == s)[0]
            if len(idx) > remaining[s]:
                todo = np.concatenate([todo, idx[remaining[s] :]])  # over-drawn: draw these again
                src[idx[remaining[s] :]] = -1
            counts[s] = min(len(idx), remaining[s])
        todo.sort()
    out = np.empty((total, 2), dtype=np.int64)
    out[:, 0] = src
    taken = []
    for s, sp in enumerate(plan.sources):
        idx = np.nonzero(src == s)[0]
        out[idx, 1] = sp.start + rng.permutation(len(idx))
        taken.append(dataclasses.replace(sp, take=len(idx)))
    return out, dataclasses.replace(plan, sources=tuple(taken))


def advance(cursor: DataCursor, plan: Plan, data: PackedData) -> DataCursor:
    """The cursor after a run of ``plan``: its sources at B+take, now naming all their documents."""
    sources = dict(cursor.sources)
    for sp, stats in zip(plan.sources, data.stats, strict=True):
        sources[sp.name] = SourceCursor(stats.documents, stats.sha256, sp.start + sp.take)
    return dataclasses.replace(cursor, sources=sources)


def format_plan(plan: Plan) -> str:
    """A table: source, blocks consumed before, blocks now, taken by this run."""
    from fedem.table import format_table

    rows = [(s.name, str(s.start), str(s.blocks), str(s.remaining), str(s.take)) for s in plan.sources]
    return format_table(("SOURCE", "CONSUMED", "BLOCKS", "NEW", "THIS RUN"), rows)
