"""``fedem registry status``: one row per adapter, as a plain text table."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from fedem.clock import format_duration
from fedem.registry.model import Adapter
from fedem.table import format_table

HEADERS = ("adapter", "state", "holder", "since", "expires in", "last revision")


@dataclasses.dataclass(frozen=True)
class Row:
    adapter: str
    state: str  # free | held | expired (held past its TTL, not yet reconciled)
    holder: str
    since: str
    expires_in: str
    last_revision: str


def status_rows(adapters: Mapping[str, Adapter], now: datetime) -> list[Row]:
    """Rows sorted by adapter name; ``now`` decides what has expired."""
    rows = []
    for name in sorted(adapters):
        a = adapters[name]
        lock = a.lock
        last = a.hops[-1].revision[:12] if a.hops else "-"
        if lock.state != "held":
            rows.append(Row(name, "free", "-", "-", "-", last))
            continue
        left = lock.until_at - now
        state, expires = (
            ("expired", f"expired {format_duration(left)} ago")
            if left.total_seconds() <= 0
            else ("held", format_duration(left))
        )
        rows.append(Row(name, state, lock.holder or "-", lock.since or "-", expires, last))
    return rows


def format_status(rows: list[Row], errors: tuple[str, ...] = ()) -> str:
    """The status table (:func:`fedem.table.format_table`); bad files are listed under it."""
    lines = [format_table(HEADERS, (dataclasses.astuple(r) for r in rows), pad_last=True)]
    lines += [f"unreadable: {e}" for e in errors]
    return "\n".join(lines) + "\n"
