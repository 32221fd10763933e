"""Entry points the CLI calls (and tests call): init, reconcile against a remote, hub lookups."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from fedem.clock import Clock, SystemClock
from fedem.errors import HubError, RegistryError
from fedem.hub.base import Hub, Revision
from fedem.registry.git import Git, redact
from fedem.registry.reconcile import Event, commit_message, reconcile, repos_to_check
from fedem.registry.store import (
    DEFAULT_BRANCH,
    DEFAULT_COMMITTER,
    Decision,
    GitStore,
    changed_adapters,
    snapshot_from_commit,
)


@dataclasses.dataclass(frozen=True)
class InitResult:
    commit: str
    target: str  # "remote <url> branch registry" or "local branch registry"


def init_registry(
    repo: str | os.PathLike = ".",
    remote: str | None = "origin",
    *,
    source: str = "HEAD",
    branch: str = DEFAULT_BRANCH,
    committer: str = DEFAULT_COMMITTER,
    clock: Clock | None = None,
) -> InitResult:
    """Create the ``registry`` branch from ``registry/`` at ``source`` (a new root commit).

    The catalogue is validated first. An existing branch is never replaced: on a remote the
    push is refused unless the branch is new; locally ``update-ref`` requires it absent.
    """
    clock = clock or SystemClock()
    git = Git(repo)
    commit = git.rev_parse(source)
    if commit is None:
        raise RegistryError(f"{source!r}: not a commit in {repo}")
    snap = snapshot_from_commit(git, commit)
    if snap.errors:
        raise RegistryError(
            f"the catalogue at {source} has {len(snap.errors)} bad file(s); first: {snap.errors[0]}"
        )
    subtree = git.out("rev-parse", f"{commit}:registry")
    tree = git.run("mktree", input=f"040000 tree {subtree}\tregistry\n".encode()).stdout.decode().strip()
    name, _, email = committer.partition(" <")
    when = f"{int(clock.now().timestamp())} +0000"
    ident = {"NAME": name, "EMAIL": email.rstrip(">"), "DATE": when}
    env = {f"GIT_{who}_{k}": v for who in ("AUTHOR", "COMMITTER") for k, v in ident.items()}
    msg = f"registry: initial catalogue from {commit[:12]}\n\n{len(snap.adapters)} adapters.\n"
    root = Git(git.repo, env).run("commit-tree", tree, "-m", msg).stdout.decode().strip()
    if remote is None:
        if git.run("update-ref", f"refs/heads/{branch}", root, "", check=False).returncode != 0:
            raise RegistryError(f"local branch {branch!r} already exists; nothing changed")
        return InitResult(root, f"local branch {branch}")
    if git.run("ls-remote", "--exit-code", "--heads", remote, branch, check=False).returncode == 0:
        raise RegistryError(f"{redact(remote)} already has a {branch!r} branch; nothing changed")
    git.push(remote, root, branch)
    return InitResult(root, f"{redact(remote)} branch {branch}")


# Hubs whose revisions carry an author the hub itself authenticated and a time from the hub's
# clock. A lock may be released only on such evidence; any other backend (file:// records
# whatever author and time its writers pass) needs an explicit trust flag.
IDENTITY_HUBS = ("hf",)


def open_registry_hub(url: str, *, trust_file_hub: bool = False) -> Hub:
    """Open the hub whose revisions release locks, refusing one that cannot vouch for them.

    A ``file://`` hub (or a bare path) is a shared folder: every writer chooses the author and
    can rewrite the time of its revisions, so anyone could release anyone's lock or backdate a
    hop. Tests and simulators, where every writer is trusted, pass ``trust_file_hub``.
    """
    from fedem.hub.base import open_hub

    hub = open_hub(url)
    scheme = hub.url.partition("://")[0]
    if scheme in IDENTITY_HUBS or (trust_file_hub and scheme == "file"):
        return hub
    hint = " (only for tests and simulations: pass --trust-file-hub)" if scheme == "file" else ""
    raise RegistryError(
        f"--hub {hub.url}: a {scheme}:// hub does not authenticate who published a revision or when, "
        f"so its revisions cannot release locks; use an hf:// hub{hint}"
    )


def hub_revisions(hub: Hub, repos: Sequence[str]) -> tuple[dict[str, list[Revision]], list[str]]:
    """Revisions of ``repos``; a repo missing on the hub has none. Returns (found, problems).

    Each repo is asked for by the name its adapter gives (``name`` or ``org/name``): the
    hub resolves it. A repo that cannot be read, for any reason but being absent, is reported
    and left out; the caller then leaves its adapter alone this run rather than expire a lock
    whose holder may have published.
    """
    found: dict[str, list[Revision]] = {}
    failed: dict[str, HubError] = {}
    for repo in repos:
        try:
            found[repo] = list(hub.revisions(repo))
        except HubError as err:
            failed[repo] = err
    if not failed:
        return found, []
    # The Hub contract reports a missing repo as a HubError like any other failure (auth,
    # transport, a repo outside the hub's org), so absence is confirmed from the hub's listing,
    # asked for once and only when something failed.
    listed: set[str] | None = None
    unlisted = ""
    try:
        listed = set(hub.list_repos())
    except HubError as err:
        unlisted = f" (listing the hub to see whether it exists failed too: {err})"
    problems: list[str] = []
    for repo, err in failed.items():
        if listed is not None and _surely_absent(hub, repo, listed):
            found[repo] = []
        else:
            problems.append(f"hub repo {repo}: {err}{unlisted}")
    return found, problems


def _surely_absent(hub: Hub, repo: str, listed: set[str]) -> bool:
    """Whether ``repo`` is missing from ``listed`` (``hub.list_repos()``) in a way that proves it absent.

    An ``hf://ORG`` hub lists its org's repos by bare name, so ``ORG/name`` is looked up as
    ``name``; a repo of another owner is not in that listing at all, and its absence there
    proves nothing (it is reported instead, never read as "no revisions").
    """
    org = getattr(hub, "org", None)
    if not org:
        return repo not in listed
    owner, slash, name = repo.rpartition("/")
    if slash and owner != org:
        return False
    return name not in listed


@dataclasses.dataclass(frozen=True)
class ReconcileReport:
    commit: str | None
    events: tuple[Event, ...]
    errors: tuple[str, ...]  # unreadable files and hub repos, each left as it was
    attempts: int
    pushed: bool = False  # this run's push made ``commit`` (False: a concurrent run pushed it)


def reconcile_remote(
    repo: str | os.PathLike | Path,
    remote: str,
    *,
    hub: Hub | None = None,
    branch: str = DEFAULT_BRANCH,
    clock: Clock | None = None,
    **store_options,
) -> ReconcileReport:
    """One reconciler run: fetch, reconcile on fresh state, at most one commit, push (retried)."""
    store = GitStore(repo, remote, branch, clock=clock, **store_options)

    def decide(snap) -> Decision:
        now = store.clock.now()
        problems: list[str] = []
        heads: dict[str, list[Revision]] = {}
        state = dict(snap.adapters)
        if hub is not None:
            heads, problems = hub_revisions(hub, repos_to_check(state))
            state = {n: a for n, a in state.items() if a.lock.state != "held" or a.hub_repo in heads}
        new_state, events = reconcile(state, now, heads, snap.policy)
        return Decision(
            changed_adapters(snap, new_state), commit_message(events), (tuple(events), tuple(problems))
        )

    outcome = store.transact(decide)
    events, problems = outcome.decision.result
    return ReconcileReport(
        outcome.commit, events, (*outcome.snapshot.errors, *problems), outcome.attempts, outcome.pushed
    )
