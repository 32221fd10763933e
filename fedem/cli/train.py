"""CLI commands: train."""

import click


def register(main: click.Group) -> None:
    """Attach this module's commands to the top-level group."""
