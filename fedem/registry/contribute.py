"""The contributor's side of a claim or release: a branch with the one-field change, and a PR.

``fedem claim NAME`` fetches the registry branch, writes the adapter file with
``lock.holder`` set to the contributor's login (times left null: the server stamps them),
commits that on a new branch without touching the working tree, pushes the branch and opens
the pull request with ``gh`` when it is installed, else prints the exact steps.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Literal

from fedem.clock import Clock, SystemClock, format_time
from fedem.errors import RegistryError
from fedem.registry.git import Git, redact
from fedem.registry.model import (
    FREE,
    Lock,
    adapter_path,
    check_login,
    check_name,
    dump_adapter,
    parse_adapter,
    same_login,
)
from fedem.registry.store import DEFAULT_BRANCH


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A claim/release branch ready (and maybe pushed, maybe with its PR opened)."""

    kind: Literal["claim", "release"]
    name: str
    login: str
    branch: str
    base: str
    commit: str
    pushed: bool
    pr_url: str | None
    steps: str


def _identity(git: Git) -> str:
    proc = git.run("var", "GIT_COMMITTER_IDENT", check=False)
    ident = proc.stdout.decode().strip()
    if proc.returncode != 0 or "<" not in ident:
        raise RegistryError("git has no identity here: set user.name and user.email (git config) first")
    return ident.rsplit(" ", 2)[0]  # drop the time and zone; fast-import gets our own


def github_login(gh: str = "gh") -> str | None:
    """The login ``gh`` is signed in as, or None without gh."""
    if shutil.which(gh) is None:
        return None
    proc = subprocess.run([gh, "api", "user", "--jq", ".login"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _compare_url(remote_url: str, registry: str, branch: str) -> str | None:
    m = re.match(
        r"(?:https://(?:[^@/]+@)?github\.com/|git@github\.com:)([^/]+/[^/]+?)(?:\.git)?/?$", remote_url
    )
    return f"https://github.com/{m.group(1)}/compare/{registry}...{branch}?expand=1" if m else None


def prepare_request(
    repo: str | Path,
    name: str,
    login: str,
    kind: Literal["claim", "release"] = "claim",
    *,
    remote: str = "origin",
    branch: str = DEFAULT_BRANCH,
    push: bool = True,
    open_pr: bool = True,
    clock: Clock | None = None,
    gh: str = "gh",
) -> Prepared:
    """Prepare (and by default push and open) the pull request for a claim or a release."""
    check_name(name)
    check_login(login)
    clock = clock or SystemClock()
    git = Git(repo)
    base = git.fetch(remote, branch, f"refs/fedem/remote/{branch}")
    if base is None:
        raise RegistryError(f"remote {redact(remote)!r} has no {branch!r} branch")
    path = adapter_path(name)
    data = git.read_file(base, path)
    if data is None:
        known = sorted(
            p.rsplit("/", 1)[-1][: -len(".yaml")]
            for _, _, _, p, _ in git.ls_tree(base, "registry/adapters")
            if p.endswith(".yaml")
        )
        raise RegistryError(
            f"unknown adapter {name!r}: no {path} on {branch} (known: {', '.join(known) or 'none'})"
        )
    adapter = parse_adapter(data, path)
    now, lock = clock.now(), adapter.lock
    # Early feedback only: the server decides again on fresh state with its own clock.
    if kind == "claim":
        if lock.state == "held" and not lock.expired(now):
            raise RegistryError(f"{name}: held by {lock.holder} until {lock.until}")
        new = dataclasses.replace(adapter, lock=Lock(holder=login))
    else:
        if lock.state != "held" or not same_login(lock.holder, login):
            raise RegistryError(f"{name}: not held by {login}; nothing to release")
        new = dataclasses.replace(adapter, lock=FREE)
    stamp = format_time(now).replace("-", "").replace(":", "")
    pr_branch = f"fedem/{kind}-{name}-{login.lower()}-{stamp}"
    message = f"{kind}: {name} by {login}\n"
    commit = git.commit_files(
        f"refs/heads/{pr_branch}", base, {path: dump_adapter(new).encode()}, message, _identity(git), now
    )

    pushed = False
    if push:
        proc = git.run(
            "push", "--quiet", remote, f"refs/heads/{pr_branch}:refs/heads/{pr_branch}", check=False
        )
        if proc.returncode != 0:
            last = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RegistryError(
                f"git push of {pr_branch} to {redact(remote)} failed: {redact(last[-1] if last else '')}"
            )
        pushed = True
    title = f"{kind}: {name}"
    body = f"{'Claims' if kind == 'claim' else 'Releases'} `{name}` for @{login}. Prepared by `fedem {kind}`."
    pr_url = None
    if pushed and open_pr and shutil.which(gh):
        proc = subprocess.run(
            [gh, "pr", "create", "--base", branch, "--head", pr_branch, "--title", title, "--body", body],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        pr_url = (
            proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None
        )

    url = git.run("remote", "get-url", remote, check=False).stdout.decode().strip() or remote
    compare = _compare_url(url, branch, pr_branch)
    steps = [f"Branch {pr_branch} holds the {kind} of {name} (commit {commit[:12]})."]
    if pr_url:
        steps.append(f"Pull request: {pr_url}")
    else:
        steps.append("To finish:")
        if not pushed:
            steps.append(f"  git push {redact(remote)} {pr_branch}")
        steps.append(f'  gh pr create --base {branch} --head {pr_branch} --title "{title}"')
        if compare:
            steps.append(f"  (or open {compare})")
    steps.append(
        "The claim workflow checks it, stamps the lock with the server's time and closes the PR with a comment."
    )
    return Prepared(kind, name, login, pr_branch, base, commit, pushed, pr_url, "\n".join(steps))
