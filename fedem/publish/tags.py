"""Checkpoint tags: ``seshu-YYYYMMDD``, then ``seshu-YYYYMMDD-2``, ``-3`` … for later ones that day.

A tag is a convenience for people (``--revision seshu-20261201``); a checkpoint's identity is
its revision id, and everything fedem records names that id. Rules:

- the tag goes on the published revision's own id (on ``hf://``, ``commit_info.oid``), never on
  a branch name or another tag;
- a tag is never moved or deleted by fedem: the backends refuse to re-point an existing tag
  (:meth:`fedem.hub.base.Hub.tag`; on ``hf://`` also when the Hub would silently keep the old
  target, see :mod:`fedem.hub.hfhub`);
- one checkpoint gets one date tag: tagging again (a rerun after a crash between publishing
  and tagging) returns the tag it already has;
- the prefix is the repo's name (``ORG/seshu`` -> ``seshu``), the date is the injected clock's,
  in UTC.
"""

from __future__ import annotations

import re
from datetime import date

from fedem.clock import Clock, now_utc
from fedem.errors import HubError
from fedem.hub import Hub, Revision
from fedem.names import check_tag

MAX_PER_DAY = 99


def tag_prefix(repo: str) -> str:
    """The tag prefix of checkpoint repo ``repo``: its name without the owner."""
    return repo.rsplit("/", 1)[-1]


def checkpoint_tag(repo: str, day: date, n: int = 1) -> str:
    """The ``n``-th checkpoint tag of ``day``: ``seshu-20261201``, ``seshu-20261201-2`` …"""
    if not 1 <= n <= MAX_PER_DAY:
        raise HubError(f"checkpoint tag: at most {MAX_PER_DAY} checkpoints a day (asked for number {n})")
    base = f"{tag_prefix(repo)}-{day:%Y%m%d}"
    return check_tag(base if n == 1 else f"{base}-{n}", HubError)


def is_checkpoint_tag(repo: str, tag: str) -> bool:
    """Whether ``tag`` has the shape of a checkpoint tag of ``repo``."""
    return re.fullmatch(rf"{re.escape(tag_prefix(repo))}-\d{{8}}(-[1-9]\d?)?", tag) is not None


def checkpoint_tags(repo: str, rev: Revision) -> tuple[str, ...]:
    """The checkpoint tags on ``rev`` (normally one)."""
    return tuple(t for t in rev.tags if is_checkpoint_tag(repo, t))


def tag_checkpoint(hub: Hub, repo: str, revision: str, *, clock: Clock | None = None) -> str:
    """Give checkpoint ``revision`` (a full id) its date tag and return it; idempotent.

    The first free name of the clock's day is taken. Losing a race for a name (another
    publisher tagged its own checkpoint with it first) moves on to the next number; the
    backend's refusal to re-point a tag is what makes that safe.
    """
    try:
        day = now_utc(clock).date()
    except ValueError as err:
        raise HubError(f"checkpoint tag: {err}") from None
    for n in range(1, MAX_PER_DAY + 1):
        revs = hub.revisions(repo)
        rev = next((r for r in revs if r.id == revision), None)
        if rev is None:
            raise HubError(f"cannot tag {repo!r}: revision {revision} is not on {hub.url}")
        if have := checkpoint_tags(repo, rev):
            return have[0]
        taken = {t for r in revs for t in r.tags}
        name = checkpoint_tag(repo, day, n)
        if name in taken:
            continue
        try:
            hub.tag(repo, revision, name)
            return name
        except HubError:
            # Only a lost race for this name is worth the next number; anything else is real.
            target = next((r.id for r in hub.revisions(repo) if name in r.tags), None)
            if target == revision:  # a lost response hid our own success
                return name
            if target is None:
                raise
    raise HubError(f"cannot tag {repo!r}: {MAX_PER_DAY} checkpoint tags of {day:%Y-%m-%d} are taken")
