"""CLI command: ``fedem merge BASE ADAPTER... --method M --output DIR`` (see fedem.merge)."""

from __future__ import annotations

import click

from fedem.merge.spec import METHODS


def _weights(text: str | None) -> list[float] | None:
    """``"0.5,0.25"`` -> [0.5, 0.25]; a one-line ConfigError for anything else."""
    if text is None:
        return None
    from fedem.errors import ConfigError

    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--weights: expected comma-separated numbers, one per adapter, got {text!r}"
        ) from None


@click.command()
@click.argument("base", required=False)
@click.argument("adapters", nargs=-1)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Merge YAML (see pipelines/merge.yaml). Flags and --set override it.",
)
@click.option("--method", default=None, help=f"One of {', '.join(METHODS)} (default linear).")
@click.option("--weights", default=None, metavar="W1,W2,...", help="One weight per adapter (default all 1).")
@click.option("--density", type=float, default=None, help="Fraction kept: TIES top-k, DARE keep probability.")
@click.option(
    "--lambda", "lambda_", type=float, default=None, help="Scale of the combined delta (default 1)."
)
@click.option("--seed", type=int, default=None, help="DARE's mask seed, recorded in the output (default 0).")
@click.option("--rescale", default=None, help="After DARE: inverse (1/p, default), l1 (mergekit's) or none.")
@click.option("--normalize/--no-normalize", default=None, help="Divide by the (agreeing) weights.")
@click.option(
    "--output", type=click.Path(file_okay=False), default=None, help="New model folder (must not exist)."
)
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config field, e.g. merge.seed=3."
)
def merge(
    base, adapters, config_path, method, weights, density, lambda_, seed, rescale, normalize, output, sets
):
    """Merge LoRA ADAPTERs into the BASE model folder, writing a new model folder.

    Exact and streaming: one tensor at a time in fp32, rounded once; untouched tensors copied
    byte for byte. Formulas and how they differ from PEFT and mergekit: docs/merging.md.
    """
    from fedem import config as cfgio
    from fedem.merge import MergeConfig, run
    from fedem.model.seshu import quiet_transformers

    quiet_transformers()
    overrides = dict(cfgio.parse_override(s) for s in sets)
    flags = {
        "base": base,
        "adapters": list(adapters) or None,
        "output": output,
        "merge.method": method,
        "merge.weights": _weights(weights),
        "merge.density": density,
        "merge.lambda_": lambda_,
        "merge.seed": seed,
        "merge.rescale": rescale,
        "merge.normalize": normalize,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    cfg = cfgio.load(MergeConfig, config_path, overrides)
    click.echo(run(cfg).summary())


COMMANDS: tuple[click.Command, ...] = (merge,)
