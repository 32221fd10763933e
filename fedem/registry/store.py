"""The registry as stored in git: read a snapshot, decide, commit, push; retry on a lost race.

:meth:`GitStore.transact` is the one safe write loop (BRIEF §6): fetch the remote branch,
read it, **decide again from that fresh state**, make at most one commit, push without
force; when the push loses a race, wait a jittered moment and start over. Nothing is
committed when the decision changes nothing.

Reading is per file and forgiving: one malformed adapter file becomes an entry in
``Snapshot.errors`` and is left alone, so it never stops the others being reconciled.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedem.clock import Clock, SystemClock
from fedem.errors import ConflictError, RegistryError
from fedem.registry.git import Git, ensure_repo, redact
from fedem.registry.model import (
    ADAPTERS_DIR,
    MAX_FILE_BYTES,
    POLICY_PATH,
    Adapter,
    dump_adapter,
    parse_adapter,
)
from fedem.registry.policy import Policy, parse_policy

DEFAULT_BRANCH = "registry"
DEFAULT_COMMITTER = "fedem-registry <registry@fedem.invalid>"
# Files in the adapters folder that are not adapters and are fine to keep there.
_IGNORED = {"README.md", ".gitkeep"}


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The registry at one commit: policy, the adapters that parsed, and one line per bad file."""

    commit: str | None
    policy: Policy
    adapters: Mapping[str, Adapter]
    errors: tuple[str, ...] = ()
    raw: Mapping[str, bytes] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class Oversized:
    """A file left unread because it is larger than a registry file may be."""

    size: int


def snapshot_from_files(
    files: Mapping[str, bytes | Oversized | None],
    commit: str | None = None,
    *,
    parse: Callable[[bytes, str], Adapter] = parse_adapter,
) -> Snapshot:
    """Parse repo paths -> bytes (None: not a regular file; Oversized: left unread). A bad
    policy file is fatal; a bad adapter file is reported and the others are still read.
    ``parse(data, path)`` reads one adapter file (a :class:`ParseCache` may stand in)."""
    policy_bytes = files.get(POLICY_PATH)
    if policy_bytes is None:
        raise RegistryError(f"{POLICY_PATH}: file not found (is this the registry branch?)")
    if isinstance(policy_bytes, Oversized):
        raise RegistryError(
            f"{POLICY_PATH}: {policy_bytes.size:,} bytes exceeds the cap of {MAX_FILE_BYTES:,}"
        )
    policy = parse_policy(policy_bytes)
    adapters: dict[str, Adapter] = {}
    errors: list[str] = []
    raw: dict[str, bytes] = {}
    for path in sorted(files):
        if not path.startswith(ADAPTERS_DIR + "/") or path.rsplit("/", 1)[-1] in _IGNORED:
            continue
        data = files[path]
        try:
            if data is None:
                raise RegistryError(f"{path}: not a regular file")
            if isinstance(data, Oversized):
                raise RegistryError(f"{path}: {data.size:,} bytes exceeds the cap of {MAX_FILE_BYTES:,}")
            adapter = parse(data, path)
        except RegistryError as err:
            errors.append(str(err))
            continue
        adapters[adapter.name] = adapter
        raw[path] = data
    return Snapshot(commit, policy, adapters, tuple(errors), raw)


def snapshot_from_dir(root: str | os.PathLike) -> Snapshot:
    """Read a plain checkout (``root`` contains ``registry/``)."""
    root = Path(root)
    files: dict[str, bytes | None] = {}
    for path in sorted((root / "registry").rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            files[rel] = None
        elif path.is_file():
            size = path.stat().st_size
            files[rel] = Oversized(size) if size > MAX_FILE_BYTES else path.read_bytes()
    return snapshot_from_files(files)


class ParseCache:
    """Adapter files already parsed, by (path, blob id); opt-in, for long-lived processes.

    A blob id names its bytes, so an entry never goes stale: a snapshot through the cache is
    the snapshot without it. Parsing dominates a snapshot (about 2.5 s for 10,000 files on
    2 CPU cores), and most files are unchanged between commits. A workflow job is a fresh
    process and gains only on its retries; a simulator running thousands of jobs in one
    process gains on each. Bounded (least recently used out first) and thread-safe.
    """

    def __init__(self, max_entries: int = 1 << 16):
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, str], tuple[bytes, Adapter]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, sha: str) -> tuple[bytes, Adapter] | None:
        with self._lock:
            item = self._items.get((path, sha))
            if item is not None:
                self._items.move_to_end((path, sha))
            return item

    def parse(self, sha: str, data: bytes, path: str) -> Adapter:
        """``parse_adapter(data, path)``, remembered under ``sha`` (errors are not kept)."""
        adapter = parse_adapter(data, path)
        with self._lock:
            self._items[(path, sha)] = (data, adapter)
            self._items.move_to_end((path, sha))
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return adapter


def snapshot_from_commit(git: Git, commit: str, cache: ParseCache | None = None) -> Snapshot:
    """Read the registry straight from a commit: no checkout, one ``cat-file`` process (for the
    blobs ``cache`` does not hold already)."""
    entries = git.ls_tree(commit, "registry")
    files: dict[str, bytes | Oversized | None] = {path: None for _, _, _, path, _ in entries}
    shas: dict[str, str] = {}
    hits: dict[str, Adapter] = {}
    regular = []
    for mode, kind, sha, path, size in entries:
        if kind == "blob" and mode in ("100644", "100755"):
            if size is not None and size > MAX_FILE_BYTES:
                files[path] = Oversized(size)  # never read: a huge blob must not cost memory or time
                continue
            item = cache.get(path, sha) if cache is not None else None
            if item is not None:
                files[path], hits[path] = item
            else:
                regular.append((sha, path))
                shas[path] = sha
    files.update(zip([p for _, p in regular], git.read_blobs(sha for sha, _ in regular), strict=True))
    if cache is None:
        return snapshot_from_files(files, commit)

    def parse(data: bytes, path: str) -> Adapter:
        hit = hits.get(path)
        return hit if hit is not None else cache.parse(shas[path], data, path)

    return snapshot_from_files(files, commit, parse=parse)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a transaction wants written: repo path -> bytes, the commit message, and a result."""

    files: Mapping[str, bytes]
    message: str
    result: Any = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a transaction ended: the pushed commit (None: nothing changed) and its decision.

    ``pushed`` says whether this run's push moved the branch; False with a commit means a
    concurrent run had pushed the very same commit first (same state, same decision)."""

    commit: str | None
    decision: Decision
    snapshot: Snapshot
    attempts: int
    pushed: bool = False


def changed_adapters(snapshot: Snapshot, new_state: Mapping[str, Adapter]) -> dict[str, bytes]:
    """Files to write for adapters that differ from the snapshot's bytes (same objects are skipped)."""
    files: dict[str, bytes] = {}
    for name, adapter in new_state.items():
        if snapshot.adapters.get(name) is adapter:
            continue
        data = dump_adapter(adapter).encode()
        if snapshot.raw.get(adapter.path) != data:
            files[adapter.path] = data
    return files


class GitStore:
    """The registry branch of ``remote``, worked on through the local repository ``repo``.

    ``repo`` may be any git repository (the contributor's clone, the workflow's checkout) or
    a path where a bare cache is created. Only private refs under ``refs/fedem/`` are written
    there; no working tree or branch is touched.
    """

    def __init__(
        self,
        repo: str | os.PathLike,
        remote: str,
        branch: str = DEFAULT_BRANCH,
        *,
        clock: Clock | None = None,
        committer: str = DEFAULT_COMMITTER,
        retries: int = 10,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        cache: ParseCache | None = None,
    ):
        self.git = ensure_repo(repo)
        self.remote = remote
        self.branch = branch
        self.clock = clock or SystemClock()
        self.committer = committer
        self.retries = retries
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.cache = cache
        self.tracking_ref = f"refs/fedem/remote/{branch}"

    def fetch(self) -> str:
        """Fetch the remote branch and return its head (the "reset to the remote" step)."""
        head = self.git.fetch(self.remote, self.branch, self.tracking_ref)
        if head is None:
            raise RegistryError(
                f"remote {redact(self.remote)!r} has no {self.branch!r} branch; create it with `fedem registry init`"
            )
        return head

    def snapshot(self, commit: str | None = None) -> Snapshot:
        return snapshot_from_commit(self.git, commit or self.fetch(), self.cache)

    def transact(self, decide: Callable[[Snapshot], Decision]) -> Outcome:
        """Fetch, decide on fresh state, commit once, push; on a lost race start over.

        ``decide`` may raise (a claim found taken on fresh state is rejected then). It runs
        again on every attempt, so it must only read the snapshot and the clock.
        """
        for attempt in range(1, self.retries + 1):
            snap = self.snapshot()
            decision = decide(snap)
            if not decision.files:
                return Outcome(None, decision, snap, attempt)
            # A private ref per thread and process: concurrent runs may share one repository.
            ref = f"refs/fedem/pending/{os.getpid()}-{threading.get_ident()}"
            commit = self.git.commit_files(
                ref, snap.commit, decision.files, decision.message, self.committer, self.clock.now()
            )
            try:
                pushed = self.git.push(self.remote, commit, self.branch)
            except ConflictError:
                # Jittered, growing wait so racing writers spread out instead of colliding again.
                self.sleep(self.rng.uniform(0.0, min(2.0, 0.05 * 2**attempt)))
                continue
            finally:
                self.git.run("update-ref", "-d", ref, check=False)
            return Outcome(commit, decision, snap, attempt, pushed)
        raise ConflictError(
            f"registry branch {self.branch!r} kept moving; gave up after {self.retries} attempts"
        )
