"""The nightly checkpoint folder: the merged weights, a record naming every merged revision, a card.

The record (``fedem.json``, a :class:`~fedem.provenance.ModelRecord`) is the merge's own,
completed with what only the nightly knows: the parent checkpoint on the hub
(``relation: merge``), the held-out figures against it, and ``nightly.merged``, the list of
adapter revisions and the registry hops each carried (:class:`~fedem.publish.history.MergedEntry`).
That list is the source of truth for ``merged_into``. The card lists accepted adapters only:
their revisions, hashes, the method, their data fingerprints and their credit joined to their
hops' contributors. Rejected adapters and held-out text appear in neither.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from fedem.clock import Clock
from fedem.config import to_dict
from fedem.hub import Hub, Revision
from fedem.io import atomic_dir, atomic_write_json, atomic_write_text
from fedem.names import CARD, PROVENANCE
from fedem.nightly.config import NightlyConfig
from fedem.nightly.plan import PlannedAdapter
from fedem.provenance import ModelRecord, ParentRef, created, get_path
from fedem.publish import Credit, MergedAdapter, Method, hub_repo_id, model_card
from fedem.publish.checkpoint import link_or_copy
from fedem.publish.history import NIGHTLY_KEY, MergedEntry


def _adapter_meta(folder: Path) -> dict:
    # Already validated by the pull (bounded, well-formed); only read for the data fingerprint.
    return json.loads((folder / PROVENANCE).read_text())


def build_checkpoint(
    dest: Path,
    merged_dir: Path,
    *,
    hub: Hub,
    cfg: NightlyConfig,
    head: Revision,
    accepted: Sequence[tuple[PlannedAdapter, Path]],
    langs: Mapping,
    credit: Sequence[Mapping],
    day: date,
    clock: Clock | None,
) -> Path:
    """Write the checkpoint folder ``dest`` (atomically) from the merge output ``merged_dir``."""
    merged_record = ModelRecord.from_dict(json.loads((merged_dir / PROVENANCE).read_text()))
    entries = [
        MergedEntry(c.name, c.revision, merged_record.extra["adapters"][i]["weights_sha256"], c.hops)
        for i, (c, _) in enumerate(accepted)
    ]
    figures = {k: c.as_dict() for k, c in langs.items()}
    record = dataclasses.replace(
        merged_record,
        created=created(clock),
        init=f"{cfg.repo}@{head.id}",
        parent=ParentRef.of(cfg.repo, head.id, head.author, head.time),
        relation="merge",
        metrics={"heldout_by_language": figures},
        extra={
            **merged_record.extra,
            NIGHTLY_KEY: {
                "date": day.isoformat(),
                "merged": [e.to_dict() for e in entries],
                # Machine-readable credit (the card shows the same): leave-one-out Δ bits/byte.
                "credit": [
                    {
                        "adapter": c.name,
                        "delta_bpb": {k: cmp.delta for k, cmp in credit[i].items()},
                        "contributors": list(c.contributors),
                    }
                    for i, (c, _) in enumerate(accepted)
                ],  # fmt: skip
                "gate": to_dict(cfg.gate),
            },
        },
    )
    repo_id = hub_repo_id(hub, cfg.repo)
    fingerprints = {}
    for c, folder in accepted:
        fp = get_path(_adapter_meta(folder), "data.fingerprint")
        if isinstance(fp, str):
            fingerprints[f"{c.name}@{c.revision[:12]}"] = fp
    card = model_card(
        model_name=repo_id,
        relation="merge",
        base_model=repo_id,
        parent_revision=head.id,
        bpb={k: c.candidate_bpb for k, c in langs.items()},
        bpb_parent={k: c.reference_bpb for k, c in langs.items()},
        languages=list(langs),
        summary=f"The nightly merge of {day.isoformat()}: {len(entries)} gated adapter"
        f"{'s' if len(entries) != 1 else ''} folded into its parent checkpoint.",
        merged=[
            MergedAdapter(e.adapter, e.revision, e.sha256, merged_record.extra["adapters"][i]["weight"])
            for i, e in enumerate(entries)
        ],
        method=Method(cfg.merge.method, merged_record.extra["merge"]),
        data_fingerprints=fingerprints,
        credit=[
            Credit(c.name, {k: cmp.delta for k, cmp in credit[i].items()}, c.contributors)
            for i, (c, _) in enumerate(accepted)
        ],
    )
    shutil.rmtree(dest, ignore_errors=True)  # the job's own scratch from an earlier, killed run
    with atomic_dir(dest) as tmp:
        for src in merged_dir.iterdir():
            if src.name not in (PROVENANCE, CARD):
                link_or_copy(src, tmp / src.name)
        atomic_write_json(tmp / PROVENANCE, record.to_dict())
        atomic_write_text(tmp / CARD, card)
    return dest
