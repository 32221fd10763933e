"""CLI commands: the claim registry (``fedem registry …``, ``fedem claim``, ``fedem release``).

Each command parses flags and calls one typed function of :mod:`fedem.registry`.
"""

from __future__ import annotations

from pathlib import Path

import click

from fedem.errors import RegistryError

_REMOTE = click.option(
    "--remote",
    default="origin",
    show_default=True,
    help="Git remote name or URL holding the registry branch.",
)
_REPO = click.option(
    "--repo",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Local git repository to work through (a bare cache is created if the path does not exist).",
)
_BRANCH = click.option("--branch", default="registry", show_default=True, help="The registry branch.")
# Hidden: lets a simulator or a test drive time; the workflows always use the runner's clock.
_NOW = click.option("--now", default=None, hidden=True, help="Pretend the time is this ISO-8601 UTC instant.")


def _clock(now: str | None):
    from fedem.clock import clock_at

    try:
        return clock_at(now)
    except ValueError as err:
        raise RegistryError(f"--now: {err}") from None


_TRUST_FILE_HUB = click.option(
    "--trust-file-hub",
    is_flag=True,
    help="Accept a file:// --hub, whose authors and times anyone writing it can choose "
    "(tests and simulations only; never in a workflow).",
)


def _hub(url: str | None, trust_file_hub: bool = False):
    if not url:
        return None
    from fedem.registry.ops import open_registry_hub

    return open_registry_hub(url, trust_file_hub=trust_file_hub)


@click.group("registry")
def registry_group() -> None:
    """The adapter registry on the `registry` branch: locks, hops, claims."""


@registry_group.command("init")
@_REPO
@_REMOTE
@click.option("--local", is_flag=True, help="Create the branch in --repo only, not on --remote.")
@click.option(
    "--source", default="HEAD", show_default=True, help="Commit whose registry/ folder seeds the branch."
)
@_BRANCH
def init_cmd(repo: Path, remote: str, local: bool, source: str, branch: str) -> None:
    """Create the registry branch from registry/ on main (never replaces an existing one)."""
    from fedem.registry.ops import init_registry

    result = init_registry(repo, None if local else remote, source=source, branch=branch)
    click.echo(f"created {result.target} at {result.commit[:12]}")


@registry_group.command("reconcile")
@_REPO
@_REMOTE
@_BRANCH
@click.option("--hub", "hub_url", default=None, help="Hub URL (hf://ORG) to look for holders' revisions.")
@_TRUST_FILE_HUB
@_NOW
def reconcile_cmd(
    repo: Path, remote: str, branch: str, hub_url: str | None, trust_file_hub: bool, now: str | None
) -> None:
    """Release locks whose holder published, expire locks past their TTL; one commit at most."""
    from fedem.registry.ops import reconcile_remote

    if hub_url is None:
        click.echo("warning: no --hub given: locks can only expire, no hop is recorded", err=True)
    hub = _hub(hub_url, trust_file_hub)
    report = reconcile_remote(repo, remote, hub=hub, branch=branch, clock=_clock(now))
    for event in report.events:
        click.echo(str(event))
    if report.commit is None:
        click.echo("nothing to change")
    elif report.pushed:
        click.echo(f"committed {report.commit[:12]}")
    else:
        click.echo(f"{report.commit[:12]} was already pushed by a concurrent run (same state, same change)")
    for problem in report.errors:
        click.echo(f"warning: {problem}", err=True)
    if report.errors:
        raise RegistryError(f"{len(report.errors)} item(s) were left alone; first: {report.errors[0]}")


@registry_group.command("check-claim")
@click.option("--base", required=True, help="The pull request's base commit.")
@click.option("--head", required=True, help="The pull request's head commit (read as data, never run).")
@click.option("--author", required=True, help="The pull request's author, from the event.")
@click.option("--pr", type=int, default=None, help="The pull request number (recorded in the lock).")
@click.option("--merge", is_flag=True, help="Apply the claim to the registry branch if it passes.")
@click.option("--hub", "hub_url", default=None, help="Hub URL, to close an ended lock with its hop first.")
@_TRUST_FILE_HUB
@click.option(
    "--comment-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the pull request comment here (on acceptance or rejection).",
)
@_REPO
@_REMOTE
@_BRANCH
@_NOW
def check_claim_cmd(
    base: str, head: str, author: str, pr: int | None, merge: bool, hub_url: str | None,
    trust_file_hub: bool, comment_file: Path | None, repo: Path, remote: str, branch: str, now: str | None,
) -> None:  # fmt: skip
    """Check a claim/release pull request as data; with --merge, stamp and push the lock."""
    from fedem.io import atomic_write_text
    from fedem.registry.claims import ClaimRejected, comment, run_check_claim

    try:
        result = run_check_claim(
            repo, remote, base=base, head=head, author=author, pr=pr, merge=merge,
            hub=_hub(hub_url, trust_file_hub), branch=branch, clock=_clock(now),
        )  # fmt: skip
    except ClaimRejected as err:
        if comment_file is not None:
            atomic_write_text(comment_file, comment(None, str(err)))
        raise
    if comment_file is not None:
        atomic_write_text(comment_file, comment(result))
    lock = result.adapter.lock
    what = f"{result.request.kind} of {result.request.name} by {result.request.login}"
    if not merge:
        click.echo(f"ok: {what} can be applied")
    elif result.request.kind == "claim":
        click.echo(
            f"applied: {what}: held until {lock.until} (commit {result.commit[:12] if result.commit else '-'})"
        )
    else:
        click.echo(f"applied: {what} (commit {result.commit[:12] if result.commit else '-'})")


@registry_group.command("force-release")
@click.argument("name")
@click.option("--login", required=True, help="Your GitHub login (must be a maintainer in policy.yaml).")
@click.option("--reason", default="", help="Why, for the commit message.")
@_REPO
@_REMOTE
@_BRANCH
@_NOW
def force_release_cmd(
    name: str, login: str, reason: str, repo: Path, remote: str, branch: str, now: str | None
) -> None:
    """End a lock now, whoever holds it (maintainers only)."""
    from fedem.registry.claims import force_release
    from fedem.registry.store import GitStore

    result = force_release(GitStore(repo, remote, branch, clock=_clock(now)), name, login, reason)
    click.echo(f"released {name} (commit {result.commit[:12] if result.commit else '-'})")


@registry_group.command("status")
@_REPO
@_REMOTE
@_BRANCH
@click.option(
    "--dir",
    "directory",
    default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Read a plain checkout (a folder holding registry/) instead of fetching.",
)
@_NOW
def status_cmd(repo: Path, remote: str, branch: str, directory: Path | None, now: str | None) -> None:
    """Print a table: adapter, state, holder, since, expires in, last revision."""
    from fedem.registry.status import format_status, status_rows
    from fedem.registry.store import GitStore, snapshot_from_dir

    snap = snapshot_from_dir(directory) if directory else GitStore(repo, remote, branch).snapshot()
    click.echo(format_status(status_rows(snap.adapters, _clock(now).now()), snap.errors), nl=False)


def _request_command(kind: str):
    @click.command(kind)
    @click.argument("name")
    @click.option("--login", default=None, help="Your GitHub login (default: the one gh is signed in as).")
    @click.option("--no-push", is_flag=True, help="Only create the local branch.")
    @click.option("--no-pr", is_flag=True, help="Do not open the pull request with gh; print the steps.")
    @_REPO
    @_REMOTE
    @_BRANCH
    def command(
        name: str, login: str | None, no_push: bool, no_pr: bool, repo: Path, remote: str, branch: str
    ) -> None:
        from fedem.registry.contribute import github_login, prepare_request

        login = login or github_login()
        if not login:
            raise RegistryError("--login: required (gh is not installed or not signed in)")
        prepared = prepare_request(
            repo, name, login, kind, remote=remote, branch=branch, push=not no_push, open_pr=not no_pr
        )  # type: ignore[arg-type]
        click.echo(prepared.steps)

    command.help = f"{'Claim' if kind == 'claim' else 'Release'} adapter NAME through a pull request on the registry branch."
    return command


COMMANDS: tuple[click.Command, ...] = (registry_group, _request_command("claim"), _request_command("release"))
