"""The night's candidates on disk: each one pulled and validated, or turned away with its reason.

A candidate that fails validation is rejected as ``invalid``; one whose weights the chain
already merged (under any name, on any base) as ``duplicate``; one the hub cannot serve, or
trained on another checkpoint, waits. For the gate's near-duplicate screen, the deltas of the
adapters the newest merge checkpoints folded in are read back from the hub.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from fedem.adapter import package as pkg
from fedem.errors import AdapterRejected, FedemError
from fedem.gate.screen import Submission
from fedem.hub import Hub
from fedem.nightly.config import NightlyConfig
from fedem.nightly.plan import PlannedAdapter
from fedem.publish.history import History
from fedem.relay import pull_adapter


def pull_candidates(
    hub: Hub,
    candidates: Sequence[PlannedAdapter],
    base_sha: str,
    work: Path,
    cfg: NightlyConfig,
    history: History | None = None,
) -> tuple[list[Submission], dict[str, str], dict[str, tuple[str, str]]]:
    """Pull each candidate's revision. One that fails validation is rejected as ``invalid``, and
    one with the weights of an adapter the chain already merged as ``duplicate`` (under any
    name or base: it would count twice); neither is pulled again on this checkpoint, and neither
    is left on disk. One the hub could not serve, or trained on another checkpoint, waits (for
    tomorrow, or for its next hop, which follows the new checkpoint)."""
    subs, waiting, rejected = [], {}, {}
    for c in candidates:
        dest = work / "adapters" / c.name
        try:
            pulled = pull_adapter(hub, c.hub_repo, c.revision, output=dest)
        except AdapterRejected as err:
            rejected[c.name] = ("invalid", str(err))
            continue
        except FedemError as err:
            waiting[c.name] = f"could not be pulled ({err})"
            continue
        seen = history.merged_weights.get(pulled.report.weights_sha256) if history else None
        if seen is not None:
            entry, ckpt = seen
            rejected[c.name] = (
                "duplicate",
                f"the same weights as {entry.adapter}@{entry.revision[:12]}, merged into {cfg.repo}@{ckpt[:12]}",
            )
            shutil.rmtree(dest, ignore_errors=True)
            continue
        if pulled.report.base_sha256 != base_sha:
            waiting[c.name] = (
                f"trained on base {pulled.report.base_sha256[:12]}, not {cfg.repo}'s head; "
                "its next hop follows the new checkpoint"
            )
            continue
        subs.append(Submission(pulled.folder, c.languages))
    return subs, waiting, rejected


MERGED_WINDOW = 7  # the newest merge checkpoints whose adapters a candidate must not nearly copy


def recent_merged(hub: Hub, history: History, adapters, work: Path, cfg: NightlyConfig):
    """(weights sha256, ΔW) of the adapters merged into the newest ``MERGED_WINDOW`` checkpoints,
    for the gate's near-duplicate screen. Each was validated when it was merged, on its own base;
    here only its delta is read (shapes do not change along a chain)."""
    from fedem.evaluate.delta import read_delta

    recent = {}
    for entry, ckpt in history.merged_weights.values():
        recent.setdefault(ckpt, []).append(entry)
    order = [r.id for r in history.chain if r.id in recent][:MERGED_WINDOW]
    out = []
    for ckpt in order:
        for entry in recent[ckpt]:
            spec = adapters.get(entry.adapter)
            repo = spec.hub_repo if spec is not None else entry.adapter
            dest = work / "merged-before" / f"{entry.adapter}-{entry.revision[:12]}"
            try:
                pulled = pull_adapter(hub, repo, entry.revision, output=dest)
            except FedemError:
                continue  # exact copies are still caught by hash; a vanished revision cannot be compared
            r = pulled.report
            out.append(
                (r.weights_sha256, read_delta(pulled.folder / pkg.WEIGHTS, rank=r.rank, alpha=r.alpha))
            )
    return out
