"""Time for all of fedem: one injectable clock and one canonical timestamp form.

Everything that stamps or decides by time (registry locks, file:// hub revisions, provenance
``created`` fields, the nightly's date) takes ``now`` from a :class:`Clock`, so tests and the
federation simulator drive all of them with one :class:`ManualClock`. On disk a time is an
ISO-8601 UTC string ending in ``Z``; in code it is an aware ``datetime`` in UTC. Client clocks
are never trusted for locks: those are stamped by the server side.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Protocol

UTC = timezone.utc


class Clock(Protocol):
    """Anything with ``now() -> aware datetime``."""

    def now(self) -> datetime: ...


@dataclasses.dataclass(frozen=True)
class SystemClock:
    """The machine's clock, in UTC: to the second by default (git and GitHub keep seconds),
    or to the microsecond (``precise=True``) where ordering within a second matters."""

    precise: bool = False

    def now(self) -> datetime:
        now = datetime.now(UTC)
        return now if self.precise else now.replace(microsecond=0)


SYSTEM_CLOCK = SystemClock()


@dataclasses.dataclass
class ManualClock:
    """A clock that moves only when told to: ``clock.advance(hours=3)``."""

    current: datetime

    def __post_init__(self) -> None:
        self.current = as_utc(self.current)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current = self.current + timedelta(**delta)
        return self.current


def now_utc(clock: Clock | None = None) -> datetime:
    """``clock.now()`` (default: the system clock), checked to be timezone-aware, in UTC."""
    now = (clock or SYSTEM_CLOCK).now()
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError("the clock returned a naive datetime; it must be timezone-aware (UTC)")
    return now.astimezone(UTC)


def clock_at(now: str | None) -> Clock:
    """The system clock, or (``now``, an ISO-8601 UTC time) a ManualClock stopped there.

    For a simulator's or a test's ``--now``; the workflows always use the runner's clock.
    Raises ValueError for a malformed time.
    """
    return SYSTEM_CLOCK if now is None else ManualClock(parse_time(now))


def as_utc(dt: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken to be UTC already (hub backends use UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """``2026-11-28T01:02:03Z`` (microseconds kept only when present)."""
    dt = as_utc(dt)
    spec = "microseconds" if dt.microsecond else "seconds"
    return dt.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`. Raises ValueError unless the string has a time zone."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"not an ISO-8601 time: {text!r}")
    # Python 3.10's fromisoformat does not read a trailing "Z".
    dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if dt.tzinfo is None:
        raise ValueError(f"time without a time zone: {text!r}")
    return dt.astimezone(UTC)


def format_duration(delta: timedelta) -> str:
    """``2h05m``, ``45m``, ``30s``: short and sign-free (callers say "ago" or "in")."""
    secs = int(abs(delta.total_seconds()))
    hours, rest = divmod(secs, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"
