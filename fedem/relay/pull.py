"""Pull: download an adapter revision, validate it, keep one cached copy per revision id."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

from fedem.adapter import package as pkg
from fedem.adapter.base import BaseInfo
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.adapter.validate import AdapterReport, validate_adapter
from fedem.errors import AdapterRejected, HubError
from fedem.hub import Hub, Revision, open_hub
from fedem.names import is_revision_id


@dataclasses.dataclass(frozen=True)
class Pulled:
    """A validated adapter revision on local disk."""

    folder: Path
    revision: Revision
    report: AdapterReport


def _hub(hub: str | Hub) -> Hub:
    return open_hub(hub) if isinstance(hub, str) else hub


def default_cache_dir() -> Path:
    """Where relay hops keep pulled parents: ``$FEDEM_CACHE``, else ``~/.cache/fedem``."""
    return Path(os.environ.get("FEDEM_CACHE") or Path.home() / ".cache" / "fedem")


def _short(rev_id: str | None) -> str:
    return rev_id[:12] if rev_id else "(none)"


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def author_label(rev: Revision) -> str:
    """A revision's author for messages; the hub may attribute nobody."""
    return rev.author or "(author unknown to the hub)"


def _checked(rev: Revision) -> Revision:
    """``rev`` if its id is a plain hex revision id. Ids become folder names (the pull cache, the
    default pull folder), so an id with ``/`` or ``..`` from a tampered hub must never get that far;
    the backends check this too, this check does not rely on them."""
    if not is_revision_id(rev.id):
        raise HubError(
            f"hub returned {rev.id[:80]!r} for {rev.repo!r}, which is not a revision id (hex digest)"
        )
    return rev


# -- pull -------------------------------------------------------------------------------------------
def pull_adapter(
    hub: str | Hub,
    name: str,
    revision: str | None = None,
    *,
    output: str | Path | None = None,
    base: BaseInfo | str | Path | None = None,
    policy: AdapterPolicy = DEFAULT_POLICY,
) -> Pulled:
    """Download revision ``revision`` (None: head) of adapter ``name`` into ``output`` and validate it.

    The files land in a hidden sibling first and are moved to ``output`` only once valid, so a
    rejected adapter never appears on disk. ``output`` defaults to ``adapters/NAME-REV12``.
    """
    validate_adapter_name(name)
    hub = _hub(hub)
    rev = _checked(hub.resolve(name, revision))
    dest = Path(output) if output else Path("adapters") / f"{name}-{rev.id[:12]}"
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HubError(f"cannot pull into {dest}: it exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.pull-{uuid.uuid4().hex[:8]}"
    try:
        # The policy's caps, so an oversized revision is refused before it is fetched.
        hub.download(name, rev.id, staging, max_files=policy.max_files, max_bytes=policy.max_bytes)
        report = _validate_revision(staging, rev, base, policy)
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Pulled(dest, rev, dataclasses.replace(report, folder=dest))


def _validate_revision(folder: Path, rev: Revision, base, policy: AdapterPolicy) -> AdapterReport:
    """Validate a downloaded revision, and check its recorded parent is the hub's parent."""
    report = validate_adapter(folder, base, policy, name=rev.repo.rsplit("/", 1)[-1])
    if report.parent_revision != rev.parent:
        raise AdapterRejected(
            f"revision {_short(rev.id)} of {rev.repo!r}: fedem.json records parent "
            f"{_short(report.parent_revision)} but the hub's parent is {_short(rev.parent)}"
        )
    return report


def _head_if_exists(hub: Hub, name: str) -> Revision | None:
    """The head of ``name``, or None when the repo is empty or absent (other hub errors propagate)."""
    try:
        return hub.head(name)
    except HubError:
        if name in hub.list_repos():
            raise
        return None


def _cached_pull(
    hub: Hub, name: str, rev: Revision, base: BaseInfo, policy: AdapterPolicy, cache_dir
) -> Pulled:
    """Pull ``rev`` into the cache (revisions are immutable, so one copy per id), validated each time."""
    root = (Path(cache_dir) if cache_dir else default_cache_dir()) / "adapters"
    hub_key = hashlib.sha256(hub.url.encode()).hexdigest()[:16]
    dest = root / hub_key / name / _checked(rev).id
    # Belt and braces before the rmtree below: whatever a hub returns, only the cache is touched.
    if not dest.resolve().is_relative_to(root.resolve() / hub_key / name):
        raise HubError(f"revision {rev.id[:80]!r} of {name!r} on {hub.url} points outside the cache {root}")
    if (dest / pkg.PROVENANCE).is_file():
        return Pulled(dest, rev, _validate_revision(dest, rev, base, policy))
    shutil.rmtree(dest, ignore_errors=True)  # a partial copy never validates; start again
    return pull_adapter(hub, name, rev.id, output=dest, base=base, policy=policy)
