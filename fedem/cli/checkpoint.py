"""CLI commands: ``publish`` (the root checkpoint) and ``cpt`` (continuous pretraining).

Each parses flags and calls one typed function: :func:`fedem.publish.publish_root` and
:func:`fedem.cpt.run_cpt`.
"""

from __future__ import annotations

import click

from fedem import config as cfgio
from fedem.cli.train import _config_opt, _overrides, _quiet_opt, _resume_opt, _set_opt
from fedem.hub import default_hub_url


def _hub_and_repo(command):
    """``--hub`` (default ``$FEDEM_HUB`` or ``file://./hub``) and ``--repo`` (default ``seshu``)."""
    command = click.option(
        "--repo", default="seshu", show_default=True, help="The checkpoint repo on the hub."
    )(command)
    return click.option(
        "--hub",
        "hub_url",
        default=default_hub_url,
        show_default="$FEDEM_HUB or file://./hub",
        help="The checkpoint hub: file://PATH or hf://ORG.",
    )(command)


@click.command("publish")
@click.argument("model_dir", type=click.Path())
@_hub_and_repo
@click.option("--author", default=None, help="Publisher named in the revision (default: the hub's).")
def publish(model_dir: str, hub_url: str, repo: str, author: str | None) -> None:
    """Publish a pretrain output (MODEL_DIR: a run folder or its model/) as the root checkpoint."""
    from fedem.hub import open_hub
    from fedem.publish import publish_root

    published = publish_root(open_hub(hub_url), model_dir, repo=repo, author=author)
    click.echo(f"published {repo}@{published.revision.id} as {published.tag}")
    click.echo(f"revision {published.revision.id}")
    click.echo(f"tag {published.tag}")


@click.command("cpt")
@_config_opt
@click.option(
    "--hub",
    "hub_url",
    default=None,
    help="Checkpoint hub (overrides hub; default $FEDEM_HUB or file://./hub).",
)
@click.option(
    "--output", type=click.Path(file_okay=False), default=None, help="Run folder (overrides output)."
)
@click.option("--dry-run", is_flag=True, help="Print what would be trained and published; write nothing.")
@_resume_opt
@_set_opt
@_quiet_opt
def cpt(config_path, hub_url, output, dry_run, resume, sets, no_progress):
    """Continue the newest checkpoint on new data; publish it only if held-out bits/byte improved."""
    from fedem.cpt import CptConfig, run_cpt
    from fedem.model.seshu import quiet_transformers

    quiet_transformers()
    cfg = cfgio.load(CptConfig, config_path, _overrides(sets, output=output, hub=hub_url))
    run_cpt(cfg, dry_run=dry_run, resume=resume, progress=not no_progress)


@click.command("pull-checkpoint")
@_hub_and_repo
@click.option("--revision", default=None, help="Revision id, unique prefix or tag. Default: the newest.")
@click.option("--output", type=click.Path(file_okay=False), required=True, help="Folder to create.")
def pull_checkpoint(hub_url: str, repo: str, revision: str | None, output: str) -> None:
    """Download a checkpoint and check it (files, weights hash, parent): a plain transformers folder."""
    from fedem.hub import open_hub
    from fedem.publish import pull_checkpoint as pull

    ckpt = pull(open_hub(hub_url), repo, revision, dest=output)
    click.echo(f"pulled {repo}@{ckpt.revision.id} ({ckpt.tag or 'untagged'}) into {ckpt.folder}")


COMMANDS: tuple[click.Command, ...] = (publish, cpt, pull_checkpoint)
