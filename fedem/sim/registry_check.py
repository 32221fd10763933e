"""Invariants of a registry run, checked from the branch's history by code of its own.

Nothing here uses fedem's registry code: the history is read with plain git plumbing, each
adapter file with ``yaml.safe_load``, and every lock transition on the first-parent history
of the branch (which ends at the final branch) is replayed against these rules:

* **double lock**: a new holder's lock starts while another holder's lock has not ended
  (replaced without its end written down, or an end later than the new start);
* **lost lock**: a lock vanishes without its end written down (``previous`` naming it, and a
  hop record for a hop), or a claim the server reported as accepted never appears on the
  branch;
* **over cap**: a login holds more unexpired locks than the policy allows;
* **bad end**: an end outside the lock's own time (before ``since``, after ``until``), or an
  expiry not at ``until``.

Accepted claims and locks seen on the branch are compared as multisets through a running
count and hash sum (:class:`HoldTally`), so memory is bounded by the number of adapters and
logins, never by the number of claims; only a mismatch reads the claim log to name examples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ADAPTERS = "registry/adapters/"
_MASK = (1 << 128) - 1


@dataclasses.dataclass(frozen=True)
class Hold:
    """One lock as stamped: adapter, holder, since (and until, claim)."""

    adapter: str
    holder: str
    since: datetime
    until: datetime | None = None
    claim: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.adapter, self.holder.casefold(), self.since.isoformat())


class HoldTally:
    """A multiset of holds in constant memory: count and a sum of hashes."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = 0

    def add(self, hold: Hold) -> None:
        h = hashlib.sha256("\0".join(hold.key).encode()).digest()
        self.count += 1
        self.digest = (self.digest + int.from_bytes(h[:16], "big")) & _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HoldTally) and (self.count, self.digest) == (other.count, other.digest)


@dataclasses.dataclass
class InvariantReport:
    commits: int = 0
    holds_seen: int = 0
    claims_accepted: int = 0
    double_locks: int = 0
    lost_locks: int = 0
    over_cap: int = 0
    bad_ends: int = 0
    held_at_end: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.double_locks or self.lost_locks or self.over_cap or self.bad_ends)

    def note(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {text}")

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


@dataclasses.dataclass(frozen=True)
class _State:
    hold: Hold | None
    previous: tuple[str, datetime, datetime, str] | None  # holder (casefolded), since, ended, reason
    hops: int
    last_hop: tuple[str, datetime] | None  # contributor (casefolded), claimed_at


def _state(name: str, data: Any) -> _State:
    lock = data.get("lock") or {}
    hold = None
    if lock.get("holder") and lock.get("since"):
        hold = Hold(
            name, str(lock["holder"]), _t(lock["since"]), _t(lock.get("until")), str(lock.get("claim") or "")
        )
    prev = data.get("previous")
    previous = None
    if prev:
        previous = (str(prev["holder"]).casefold(), _t(prev["since"]), _t(prev["ended"]), str(prev["reason"]))
    hops = data.get("hops") or []
    last = (str(hops[-1]["contributor"]).casefold(), _t(hops[-1]["claimed_at"])) if hops else None
    return _State(hold, previous, len(hops), last)


def _t(value: Any) -> datetime:
    """A time of the file as an aware UTC datetime (YAML may already have made it one)."""
    if not isinstance(value, datetime):
        text = str(value)
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _tokens(stream) -> Iterator[bytes]:
    rest = b""
    while chunk := stream.read(1 << 16):
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _changes(remote: Path, branch: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """(commit, [(status, path, new blob)]) of each first-parent commit touching adapters, oldest first."""
    cmd = ["git", "-C", str(remote), "log", "--first-parent", "--reverse", "--raw", "-z", "--no-abbrev"]
    cmd += ["--no-renames", "--format=%x01%H", branch, "--", ADAPTERS.rstrip("/")]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        commit, items, meta = None, [], None
        for token in _tokens(proc.stdout):
            text = token.decode("utf-8", "surrogateescape").lstrip("\n")
            if meta is not None:
                items.append((meta[4][:1], text, meta[3]))
                meta = None
            elif text.startswith("\x01"):
                if commit is not None:
                    yield commit, items
                commit, items = text[1:], []
            elif text.startswith(":"):
                meta = text[1:].split(" ")
        if commit is not None:
            yield commit, items
    if proc.returncode:
        raise RuntimeError(f"git log failed in {remote} (exit {proc.returncode})")


class _Blobs:
    """One ``git cat-file --batch`` process, asked one blob at a time."""

    def __init__(self, remote: Path):
        self.proc = subprocess.Popen(
            ["git", "-C", str(remote), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def read(self, sha: str) -> bytes:
        self.proc.stdin.write(sha.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        size = int(header[2])
        data = self.proc.stdout.read(size + 1)
        return data[:size]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def check_history(
    remote: Path,
    accepted: HoldTally,
    *,
    max_holds: int,
    branch: str = "registry",
    claim_log: Path | None = None,
) -> InvariantReport:
    """Replay the branch's lock transitions; compare the holds seen with the accepted claims."""
    report = InvariantReport(claims_accepted=accepted.count)
    state: dict[str, _State] = {}
    holds_of: dict[str, dict[str, str]] = {}  # login (casefolded) -> adapter -> until
    seen = HoldTally()
    blobs = _Blobs(remote)
    try:
        for commit, items in _changes(remote, branch):
            report.commits += 1
            for status, path, sha in items:
                if not (path.startswith(ADAPTERS) and path.endswith(".yaml")):
                    continue
                name = path[len(ADAPTERS) : -len(".yaml")]
                old = state.get(name, _State(None, None, 0, None))
                if status == "D":
                    if old.hold is not None:
                        report.note("lost_locks", f"{commit[:12]} deleted {name} held by {old.hold.holder}")
                    state.pop(name, None)
                    continue
                new = _state(name, yaml.load(blobs.read(sha), Loader=_Loader) or {})
                _transition(report, commit[:12], old, new, holds_of, seen, max_holds)
                state[name] = new
    finally:
        blobs.close()
    report.holds_seen = seen.count
    report.held_at_end = sum(1 for s in state.values() if s.hold is not None)
    if seen != accepted:
        _name_mismatch(report, remote, branch, claim_log)
    return report


def _transition(report, commit, old: _State, new: _State, holds_of, seen: HoldTally, max_holds) -> None:
    a, b = old.hold, new.hold
    if a is not None and b is not None and a.key == b.key:
        if (a.until, a.claim) != (b.until, b.claim):
            report.note(
                "bad_ends", f"{commit} changed {a.adapter}'s lock in place (until {a.until} -> {b.until})"
            )
        return
    if a is not None:  # a's lock ends here: its end must be written down
        holds_of.get(a.holder.casefold(), {}).pop(a.adapter, None)
        prev = new.previous
        if prev is None or prev[:2] != (a.holder.casefold(), a.since):
            if b is not None and b.since < a.until:
                report.note(
                    "double_locks", f"{commit} {b.holder} took {a.adapter} held by {a.holder} until {a.until}"
                )
            else:
                report.note(
                    "lost_locks", f"{commit} {a.adapter}: the lock of {a.holder} since {a.since} vanished"
                )
        else:
            ended, reason = prev[2], prev[3]
            if not a.since <= ended <= a.until or (reason == "expired" and ended != a.until):
                report.note("bad_ends", f"{commit} {a.adapter}: {a.holder}'s lock {reason} at {ended}")
            if reason == "hop" and (
                new.hops != old.hops + 1 or new.last_hop != (a.holder.casefold(), a.since)
            ):
                report.note("lost_locks", f"{commit} {a.adapter}: {a.holder}'s hop was not recorded")
    if b is None:
        return
    seen.add(b)
    prev = new.previous
    if prev is not None and prev[2] > b.since:
        report.note(
            "double_locks",
            f"{commit} {b.holder} took {b.adapter} at {b.since}; the last lock ended {prev[2]}",
        )
    mine = holds_of.setdefault(b.holder.casefold(), {})
    active = [n for n, until in mine.items() if until > b.since]
    if len(active) >= max_holds:
        report.note(
            "over_cap", f"{commit} {b.holder} took {b.adapter} while holding {', '.join(sorted(active))}"
        )
    mine[b.adapter] = b.until


def _name_mismatch(report: InvariantReport, remote: Path, branch: str, claim_log: Path | None) -> None:
    """Only on a mismatch: name the accepted claims missing from the branch (and the reverse)."""
    accepted: set[tuple[str, str, str]] = set()
    if claim_log is not None and claim_log.exists():
        with claim_log.open() as f:
            for line in f:
                rec = json.loads(line)
                accepted.add(Hold(rec["adapter"], rec["holder"], _t(rec["since"])).key)
    seen: set[tuple[str, str, str]] = set()
    blobs = _Blobs(remote)
    try:
        for _, items in _changes(remote, branch):
            for status, path, sha in items:
                if status != "D" and path.startswith(ADAPTERS) and path.endswith(".yaml"):
                    hold = _state(
                        path[len(ADAPTERS) : -5], yaml.load(blobs.read(sha), Loader=_Loader) or {}
                    ).hold
                    if hold is not None:
                        seen.add(hold.key)
    finally:
        blobs.close()
    missing = sorted(accepted - seen) if accepted else []
    for key in missing:
        report.note("lost_locks", f"accepted claim of {key[0]} by {key[1]} at {key[2]} is not on the branch")
    if not missing:  # no log to name them from, or the difference is the other way round
        report.note(
            "lost_locks",
            f"{report.claims_accepted} claims accepted but {report.holds_seen} locks on the branch",
        )
