"""Claims and releases by pull request, checked on the server as data.

A claim pull request changes one thing: the ``lock`` of one adapter file, to
``holder: <the PR author>`` with null times (a *requested* lock). A release pull request sets
that lock back to all-null. The server side (``fedem registry check-claim``, run by
``claim.yml`` under ``pull_request_target``) never checks out or runs the PR: it reads the
PR's diff and the one changed blob with git plumbing, as data, then decides on the fresh
registry state and, with ``merge``, writes the stamped lock itself: ``since`` is the server's
time when the claim is applied, ``until`` is ``since`` + the policy TTL. The PR's own commits
never enter the registry branch, so its history stays linear and its times untrusted.

Every rejection is a :class:`ClaimRejected`: one line, fit for a PR comment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from fedem.clock import format_time
from fedem.errors import RegistryError
from fedem.hub.base import Revision
from fedem.registry.git import Git
from fedem.registry.model import (
    FREE,
    Adapter,
    Lock,
    Previous,
    adapter_path,
    check_login,
    dump_adapter,
    name_from_path,
    parse_adapter,
    same_login,
)
from fedem.registry.policy import Policy
from fedem.registry.reconcile import Event, reconcile_one
from fedem.registry.store import Decision, GitStore, Snapshot


class ClaimRejected(RegistryError):
    """A claim or release that the registry refuses; the message explains why."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One file changed by a pull request (from ``git diff --raw``)."""

    status: str  # A, M, D, T ...
    path: str
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str


@dataclasses.dataclass(frozen=True)
class Request:
    """What a pull request asks for, once its diff passed the checks."""

    kind: Literal["claim", "release"]
    name: str
    login: str


def request_from_changes(
    changes: Sequence[Change], read_blob: Callable[[str], bytes], author: str
) -> Request:
    """Check a PR's changed files and turn them into a Request (pure; blobs read by id)."""
    check_login(author, "pull request author")
    if not changes:
        raise ClaimRejected("the pull request changes no file; a claim changes the lock of one adapter file")
    if len(changes) > 1:
        paths = ", ".join(repr(c.path) for c in changes[:5])
        raise ClaimRejected(
            f"a claim must change exactly one file, registry/adapters/<name>.yaml; "
            f"this pull request changes {len(changes)}: {paths}"
        )
    (change,) = changes
    try:
        name = name_from_path(change.path)
    except RegistryError as err:
        raise ClaimRejected(f"{err}; a claim may change only its adapter's file") from None
    if change.status == "A":
        raise ClaimRejected(
            f"unknown adapter {name!r}: there is no {change.path} to claim (adapters are added by maintainers)"
        )
    if change.status != "M" or change.old_mode != "100644" or change.new_mode != "100644":
        raise ClaimRejected(
            f"{change.path}: a claim must edit the file in place (git status {change.status}, mode {change.new_mode})"
        )
    try:
        old = parse_adapter(read_blob(change.old_blob), change.path)
        new = parse_adapter(read_blob(change.new_blob), change.path, untrusted=True, allow_request=True)
    except ClaimRejected:
        raise
    except RegistryError as err:
        raise ClaimRejected(str(err)) from None
    for field in ("name", "spec", "previous", "hops"):
        if getattr(old, field) != getattr(new, field):
            raise ClaimRejected(f"{change.path}: {field}: a claim may change only the lock fields")
    lock = new.lock
    if lock.state == "held" or lock.claim is not None:
        raise ClaimRejected(
            f"{change.path}: lock.since/until/claim must stay null; the server stamps them when it applies the claim"
        )
    if lock.state == "requested":
        if not same_login(lock.holder, author):
            raise ClaimRejected(
                f"{change.path}: lock.holder is {lock.holder!r} but the pull request is by {author!r}; "
                "a claim must name its own author"
            )
        return Request("claim", name, author)
    if old.lock.state == "free":
        raise ClaimRejected(
            f"{change.path}: the lock does not change; set lock.holder to your login to claim"
        )
    return Request("release", name, author)


def parse_raw_diff(raw: bytes) -> list[Change]:
    """Parse ``git diff --raw -z --no-abbrev`` output."""
    items = raw.split(b"\0")
    changes, i = [], 0
    while i < len(items) and items[i]:
        meta = items[i].decode()
        path = items[i + 1].decode("utf-8", "surrogateescape")
        old_mode, new_mode, old_blob, new_blob, status = meta.lstrip(":").split(" ")
        changes.append(Change(status[:1], path, old_mode, new_mode, old_blob, new_blob))
        i += 2
    return changes


def request_from_git(git: Git, base: str, head: str, author: str) -> Request:
    """The Request of the PR ``base``...``head`` in ``git``'s repository, read as data.

    The diff is taken from the merge base, like GitHub's "Files changed", so a PR branched
    from an older registry commit is judged by its own change only.
    """
    for label, sha in (("base", base), ("head", head)):
        if git.rev_parse(sha) is None:
            raise ClaimRejected(
                f"cannot read the pull request's {label} commit {sha!r}; it will be checked again when it is updated"
            )
    proc = git.run("merge-base", base, head, check=False)
    if proc.returncode != 0:
        raise ClaimRejected("the pull request does not branch from the registry branch")
    mb = proc.stdout.decode().strip()
    raw = git.run(
        "diff", "--raw", "-z", "--no-abbrev", "--no-renames", "--no-ext-diff", "--no-textconv", mb, head
    ).stdout
    changes = parse_raw_diff(raw)
    return request_from_changes(changes, lambda sha: git.read_blobs([sha])[0], author)


def _active_holds(adapters: Mapping[str, Adapter], login: str, now: datetime, skip: str) -> list[str]:
    return sorted(
        n
        for n, a in adapters.items()
        if n != skip
        and a.lock.state == "held"
        and same_login(a.lock.holder, login)
        and not a.lock.expired(now)
    )


def apply_request(
    req: Request,
    adapter: Adapter,
    adapters: Mapping[str, Adapter],
    policy: Policy,
    now: datetime,
    pr: int | None = None,
) -> Adapter:
    """The adapter after ``req`` is applied at server time ``now``, or ClaimRejected.

    ``adapter`` must already be reconciled at ``now`` (an expired lock is then free).
    """
    lock, who = adapter.lock, req.login
    if req.kind == "release":
        if lock.state != "held" or not same_login(lock.holder, who):
            holder = f"held by {lock.holder}" if lock.holder else "free"
            raise ClaimRejected(f"{adapter.name}: {who} cannot release it: it is {holder}")
        prev = Previous(
            holder=lock.holder or who,
            since=lock.since or format_time(now),
            ended=format_time(now),
            reason="released",
        )
        return dataclasses.replace(adapter, lock=FREE, previous=prev)
    if not policy.has_hub_identity(who):
        # Without a mapped hub account no revision could ever complete this lock: it would only
        # block the adapter for a TTL and then expire, however much work was published.
        raise ClaimRejected(
            f"{who} has no hub identity in registry/policy.yaml (identities); a maintainer must map "
            f"the login to the hub account you publish with, e.g. `{who}: [your-hub-user]`"
        )
    if lock.state == "held" and not lock.expired(now):
        mine = " (by you)" if same_login(lock.holder, who) else ""
        raise ClaimRejected(f"{adapter.name}: already held{mine} by {lock.holder} until {lock.until}")
    prev = adapter.previous
    if prev is not None and same_login(prev.holder, who) and now < prev.ended_at + policy.cooldown:
        raise ClaimRejected(
            f"{adapter.name}: {who} held it until {prev.ended}; cool-down of {policy.cooldown_minutes} min "
            f"lasts until {format_time(prev.ended_at + policy.cooldown)}"
        )
    holds = _active_holds(adapters, who, now, adapter.name)
    if len(holds) >= policy.max_holds:
        raise ClaimRejected(
            f"{who} already holds {len(holds)} lock(s) ({', '.join(holds)}); the cap is {policy.max_holds}"
        )
    stamped = Lock(
        holder=who,
        since=format_time(now),
        until=format_time(now + policy.ttl),
        claim=f"#{pr}" if pr else None,
    )
    return dataclasses.replace(adapter, lock=stamped)


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    """A claim or release that passed: the adapter as written, and what the reconciler did first."""

    request: Request
    adapter: Adapter
    events: tuple[Event, ...]
    commit: str | None = None


def decide_request(
    req: Request,
    snap: Snapshot,
    now: datetime,
    revisions: Callable[[str], Sequence[Revision]] = lambda repo: (),
    pr: int | None = None,
) -> Decision:
    """Decide ``req`` on a fresh snapshot: reconcile that adapter at ``now``, then apply."""
    path = adapter_path(req.name)
    adapter = snap.adapters.get(req.name)
    if adapter is None:
        bad = [e for e in snap.errors if e.startswith(path + ":")]
        raise ClaimRejected(
            bad[0] if bad else f"unknown adapter {req.name!r}: no {path} on the registry branch"
        )
    event = None
    if adapter.lock.state == "held":
        # An expired (or already completed) lock is closed first, so its hop is never lost.
        adapter, event = reconcile_one(adapter, now, revisions(adapter.hub_repo), snap.policy)
    new = apply_request(req, adapter, snap.adapters, snap.policy, now, pr)
    events = (event,) if event else ()
    title = f"{req.kind}: {req.name} by {req.login}" + (f" (#{pr})" if pr else "")
    body = "".join(f"- {e}\n" for e in events)
    message = title + "\n" + (f"\n{body}" if body else "")
    return Decision({path: _dump(new)}, message, ClaimResult(req, new, events))


def _dump(adapter: Adapter) -> bytes:
    return dump_adapter(adapter).encode()


def merge_request(
    store: GitStore,
    req: Request,
    revisions: Callable[[str], Sequence[Revision]] = lambda repo: (),
    pr: int | None = None,
) -> ClaimResult:
    """Apply ``req`` to the registry branch (re-deciding on every retry) and push it."""
    outcome = store.transact(lambda snap: decide_request(req, snap, store.clock.now(), revisions, pr))
    return dataclasses.replace(outcome.decision.result, commit=outcome.commit)


def force_release(store: GitStore, name: str, maintainer: str, reason: str = "") -> ClaimResult:
    """A maintainer ends a lock now, whoever holds it (recorded as ``forced``)."""

    def decide(snap: Snapshot) -> Decision:
        if not snap.policy.is_maintainer(maintainer):
            raise ClaimRejected(f"{maintainer} is not a maintainer in registry/policy.yaml")
        adapter = snap.adapters.get(name)
        if adapter is None:
            raise ClaimRejected(f"unknown adapter {name!r}: no {adapter_path(name)} on the registry branch")
        lock, now = adapter.lock, store.clock.now()
        if lock.state != "held":
            raise ClaimRejected(f"{name}: not held; nothing to release")
        prev = Previous(
            holder=lock.holder or "",
            since=lock.since or format_time(now),
            ended=format_time(now),
            reason="forced",
        )
        new = dataclasses.replace(adapter, lock=FREE, previous=prev)
        why = f": {reason}" if reason else ""
        message = f"force-release: {name} held by {lock.holder}, by maintainer {maintainer}{why}\n"
        return Decision(
            {adapter.path: _dump(new)}, message, ClaimResult(Request("release", name, maintainer), new, ())
        )

    outcome = store.transact(decide)
    return dataclasses.replace(outcome.decision.result, commit=outcome.commit)


def comment(result: ClaimResult | None, error: str | None = None) -> str:
    """The pull request comment for an accepted claim/release or a rejection."""
    if result is None:
        return (
            f"**Claim rejected:** {error}\n\nNothing was changed. Fix the pull request or open a new one.\n"
        )
    a = result.adapter
    where = f" (registry commit `{result.commit[:12]}`)" if result.commit else ""
    if result.request.kind == "release":
        return f"**Released** `{a.name}`{where}. Thank you, @{result.request.login}!\n"
    return (
        f"**Claimed** `{a.name}` for @{a.lock.holder}{where}: the lock runs from {a.lock.since} "
        f"until {a.lock.until}. Publish a new revision of hub repo `{a.hub_repo}` before then; "
        "the reconciler releases the lock when it sees it. This pull request is closed: the bot wrote the "
        "stamped lock itself.\n"
    )


def run_check_claim(
    repo,
    remote: str,
    *,
    base: str,
    head: str,
    author: str,
    pr: int | None = None,
    merge: bool = False,
    hub=None,
    branch: str = "registry",
    clock=None,
    **store_options,
) -> ClaimResult:
    """Server side of a claim PR: read its diff as data, decide on fresh state, maybe apply."""
    store = GitStore(repo, remote, branch, clock=clock, **store_options)
    req = request_from_git(store.git, base, head, author)
    revisions = _hub_lookup(hub) if hub is not None else (lambda repo: ())
    if merge:
        return merge_request(store, req, revisions, pr)
    return decide_request(req, store.snapshot(), store.clock.now(), revisions, pr).result


def _hub_lookup(hub) -> Callable[[str], Sequence[Revision]]:
    from fedem.registry.ops import hub_revisions

    def lookup(repo: str) -> Sequence[Revision]:
        found, problems = hub_revisions(hub, [repo])
        if problems:
            raise RegistryError(problems[0])
        return found[repo]

    return lookup
