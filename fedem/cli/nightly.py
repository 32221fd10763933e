"""CLI command ``nightly``: one thin call of :func:`fedem.nightly.run_nightly`."""

from __future__ import annotations

import click

from fedem import config as cfgio
from fedem.cli.train import _overrides, _set_opt


@click.command("nightly")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default="pipelines/nightly.yaml",
    show_default=True,
    help="The nightly's YAML config (gate policy, merge method, checkpoint repo, registry).",
)
@click.option("--hub", "hub_url", default=None, help="Checkpoint and adapter hub (overrides hub).")
@click.option("--remote", default=None, help="Registry git remote (overrides registry.remote).")
@click.option(
    "--repo",
    "registry_cache",
    type=click.Path(),
    default=None,
    help="Local git repository to fetch the registry into (overrides registry.cache).",
)
@click.option("--method", default=None, help="Merge method (overrides merge.method).")
@click.option(
    "--output", type=click.Path(file_okay=False), default=None, help="Job folder (overrides output)."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Gate, merge and score in scratch; print what would be published; write nothing.",
)
@_set_opt
def nightly(config_path, hub_url, remote, registry_cache, method, output, dry_run, sets):
    """Gate the hops not yet merged, merge the accepted ones, publish a checkpoint, mark the hops."""
    from fedem.model.seshu import quiet_transformers
    from fedem.nightly import NightlyConfig, run_nightly

    quiet_transformers()
    extra = ("merge.method=" + method,) if method else ()
    cfg = cfgio.load(NightlyConfig, config_path, _overrides((*sets, *extra), output=output, hub=hub_url))
    run_nightly(cfg, remote=remote, registry_cache=registry_cache, dry_run=dry_run, log=click.echo)


COMMANDS: tuple[click.Command, ...] = (nightly,)
