"""The ``fedem`` command line. Commands are thin: each parses flags and calls one typed function.

Expected failures (:class:`fedem.errors.FedemError`) print one ``error:`` line and exit 2.
"""

from __future__ import annotations

import sys

import click

from fedem import __version__
from fedem.errors import FedemError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FedemError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fedem")
def main() -> None:
    """fedem: train one multilingual Mamba LM together (relay finetuning, claims, gated merges)."""


def _register() -> None:
    # Every module of fedem.cli lists its commands in COMMANDS; each command is thin and calls
    # one typed function of the package (which the tests call too).
    from fedem.cli import checkpoint, evaluate, merge, nightly, registry, relay, simulate, train

    for module in (train, relay, registry, evaluate, merge, checkpoint, nightly, simulate):
        for command in module.COMMANDS:
            main.add_command(command)


_register()


def run() -> None:  # pragma: no cover - exercised through `python -m fedem`
    main(prog_name="fedem")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
