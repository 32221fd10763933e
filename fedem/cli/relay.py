"""CLI commands: the ``hub`` group, and the relay's pull, push and lineage (see fedem.relay).

Each command parses flags and calls one typed function of the package; those return data and
raise :class:`fedem.errors.FedemError` subclasses, which the top-level group prints as one line.
"""

from __future__ import annotations

import click

from fedem.hub import default_hub_url

_hub_option = click.option(
    "--hub",
    "hub_url",
    default=default_hub_url,
    show_default="$FEDEM_HUB or file://./hub",
    help="Hub URL: file://PATH or hf://ORG.",
)


@click.group("hub")
def hub_group() -> None:
    """Create and inspect adapter hubs (file://PATH or hf://ORG)."""


@hub_group.command("init")
@click.argument("url", required=False)
def init_cmd(url: str | None) -> None:
    """Create a file:// hub, or check auth and org access of an hf:// hub."""
    from fedem.hub import open_hub

    click.echo(open_hub(url or default_hub_url()).init())


@hub_group.command("ls")
@_hub_option
@click.option("--full", is_flag=True, help="Show full revision ids.")
@click.argument("repo", required=False)
def ls_cmd(hub_url: str, full: bool, repo: str | None) -> None:
    """List the hub's repos, or REPO's revisions (newest first)."""
    from fedem.hub import format_revisions, open_hub

    hub = open_hub(hub_url)
    if repo is None:
        for name in hub.list_repos():
            click.echo(name)
    else:
        click.echo(format_revisions(hub.revisions(repo), full=full))


@click.command("pull")
@_hub_option
@click.option("--revision", default=None, help="Revision id, unique prefix (7+) or tag. Default: the head.")
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder to create. Default: adapters/NAME-REV12.",
)
@click.option(
    "--base",
    "base_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also check the adapter against this base model (shapes and identity).",
)
@click.argument("name")
def pull_cmd(hub_url: str, revision: str | None, output: str | None, base_dir: str | None, name: str) -> None:
    """Download adapter NAME from the hub and validate it."""
    from fedem.relay import author_label, pull_adapter

    pulled = pull_adapter(hub_url, name, revision, output=output, base=base_dir)
    rep, rev = pulled.report, pulled.revision
    click.echo(
        f"pulled {name}@{rev.id[:12]} by {author_label(rev)} into {pulled.folder} "
        f"(r={rep.rank}, {rep.parameters:,} params, bits/byte {rep.bpb_before:.4f} -> {rep.bpb_after:.4f})"
    )


@click.command("push")
@_hub_option
@click.option("-m", "--message", default=None, help="Revision message. Default: a summary of the hop.")
@click.option(
    "--parent", default=None, help="Parent revision. Default: the one DIR was trained from (its fedem.json)."
)
@click.argument("name")
@click.argument("folder", metavar="DIR", type=click.Path())
def push_cmd(hub_url: str, message: str | None, parent: str | None, name: str, folder: str) -> None:
    """Validate adapter DIR and publish it as the next revision of NAME."""
    from fedem.relay import author_label, push_adapter

    rev = push_adapter(hub_url, name, folder, message=message, parent=parent)
    click.echo(f"published {name}@{rev.id[:12]} (parent {(rev.parent or '-')[:12]}) by {author_label(rev)}")


@click.command("lineage")
@_hub_option
@click.option("--full", is_flag=True, help="Show full revision ids.")
@click.argument("name")
def lineage_cmd(hub_url: str, full: bool, name: str) -> None:
    """Show adapter NAME's chain of revisions: parent, contributor, time, base, bits/byte."""
    from fedem.relay import format_lineage, lineage

    click.echo(format_lineage(lineage(hub_url, name), full=full))


COMMANDS: tuple[click.Command, ...] = (hub_group, pull_cmd, push_cmd, lineage_cmd)
