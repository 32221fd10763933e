"""An adapter's history as the hub and its ``fedem.json`` records tell it, and tags on revisions.

Revision ids, parents, authors and times come from the hub (its clock, its authentication);
contributor, base and bits-per-byte come from each revision's ``fedem.json``, which cannot hold
its own id. A record whose parent disagrees with the hub's is flagged, never trusted silently.
"""

from __future__ import annotations

import dataclasses
import math

from fedem.adapter import package as pkg
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.errors import FedemError
from fedem.hub import Hub, Revision, open_hub
from fedem.hub.rules import validate_tag
from fedem.table import format_table

MERGED_TAG_PREFIX = "merged-"


@dataclasses.dataclass(frozen=True)
class LineageEntry:
    """One revision of an adapter with the provenance its ``fedem.json`` records (None if unreadable)."""

    revision: Revision
    contributor: str | None
    base: str | None  # "arch sha256[:12]" plus " repo@revision" when known
    steps: int | None
    tokens: int | None
    bpb_before: float | None
    bpb_after: float | None
    parent_matches: bool  # fedem.json's parent agrees with the hub's
    follow: str | None = None  # how the hop moved to a newer checkpoint: "reset@C" or "rebased@C"

    @property
    def bpb_delta(self) -> float | None:
        if self.bpb_before is None or self.bpb_after is None:
            return None
        return self.bpb_after - self.bpb_before


def _hub(hub: str | Hub) -> Hub:
    return open_hub(hub) if isinstance(hub, str) else hub


# -- lineage and tags -------------------------------------------------------------------------------
def lineage(hub: str | Hub, name: str, *, policy: AdapterPolicy = DEFAULT_POLICY) -> list[LineageEntry]:
    """Every revision of ``name``, newest first, with its recorded contributor, base and bpb."""
    validate_adapter_name(name)
    hub = _hub(hub)
    out = []
    for rev in hub.revisions(name):
        try:
            raw = hub.read_file(name, pkg.PROVENANCE, rev.id, max_bytes=policy.max_text_bytes)
            meta = pkg.parse_json_object(raw, f"{pkg.PROVENANCE} of {rev.id[:12]}")
        except FedemError:  # missing, oversized or hostile: shown as unknown, never a crash
            meta = {}
        out.append(
            LineageEntry(
                revision=rev,
                contributor=_typed(meta, "contributor", str),
                base=_base_label(meta),
                steps=_typed(meta, "metrics.steps", int),
                tokens=_typed(meta, "metrics.tokens", int),
                bpb_before=_typed(meta, "metrics.bpb_before", float),
                bpb_after=_typed(meta, "metrics.bpb_after", float),
                parent_matches=bool(meta) and pkg.parent_revision(meta) == rev.parent,
                follow=_follow_label(meta),
            )
        )
    return out


def _typed(meta: dict, dotted: str, kind: type):
    """A recorded field if it has the expected type, else None. Nothing here was validated (any
    hub writer can publish any fedem.json), and a wrong type must show as unknown, not crash
    the table. bool is refused as a number; a float must be finite."""
    v = pkg.get_path(meta, dotted)
    if kind is str:
        return v if isinstance(v, str) else None
    if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int):
        return None
    return float(v) if kind is float and math.isfinite(v) else (v if kind is int else None)


def _base_label(meta: dict) -> str | None:
    base = meta.get("base")
    if not isinstance(base, dict):
        return None
    label = f"{base.get('arch')} {str(base.get('sha256'))[:12]}"
    if base.get("repo"):
        label += f" {base['repo']}@{str(base.get('revision') or 'head')[:12]}"
    return label


def _follow_label(meta: dict) -> str | None:
    # Unvalidated, like every field here: shown only when it has the recorded shape.
    f = meta.get("follow")
    if not (isinstance(f, dict) and f.get("kind") in ("reset", "rebased") and isinstance(f.get("onto"), str)):
        return None
    if f["kind"] == "reset" and isinstance(f.get("merged_into"), str):
        return f"reset after merge into {f['merged_into'][:12]}"
    return f"rebased onto {f['onto'][:12]}"


def format_lineage(entries: list[LineageEntry], *, full: bool = False) -> str:
    """A plain-text table of :func:`lineage`, newest first."""
    width = 64 if full else 12

    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    rows = [
        (
            "REVISION",
            "PARENT",
            "CONTRIBUTOR",
            "AUTHOR",
            "TIME (UTC)",
            "STEPS",
            "BPB BEFORE->AFTER",
            "DELTA",
            "BASE",
            "BASE MOVE",
        )
    ]
    for e in entries:
        r = e.revision
        rows.append(
            (
                r.id[:width] + ("" if e.parent_matches else "!"),
                (r.parent or "-")[:width],
                e.contributor or "?",
                r.author or "?",  # "": the hub names nobody
                r.time.strftime("%Y-%m-%d %H:%M:%S"),
                num(e.steps, "d"),
                f"{num(e.bpb_before, '.4f')}->{num(e.bpb_after, '.4f')}",
                num(e.bpb_delta, "+.4f"),
                e.base or "?",
                e.follow or "-",
            )
        )
    lines = [format_table(rows[0], rows[1:])]
    if any(not e.parent_matches for e in entries):
        lines.append("! fedem.json missing, unreadable, or its parent disagrees with the hub")
    return "\n".join(lines)


def merged_tag(checkpoint: str) -> str:
    """The tag the nightly merge puts on the revision it merged into ``checkpoint``."""
    return validate_tag(f"{MERGED_TAG_PREFIX}{checkpoint}")


def tag_revision(hub: str | Hub, name: str, revision: str | None, tag: str) -> Revision:
    """Tag ``revision`` (None: head) of adapter ``name``; tags are immutable. Returns the revision."""
    validate_adapter_name(name)
    hub = _hub(hub)
    rev = hub.resolve(name, revision)
    hub.tag(name, rev.id, tag)
    return hub.resolve(name, rev.id)
