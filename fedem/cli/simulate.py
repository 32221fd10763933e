"""CLI command: ``fedem simulate``: the whole federation on one machine, or (``--registry-only``)
the claim registry at scale.

The command parses flags and calls :func:`fedem.sim.run.run_simulation` or
:func:`fedem.sim.registry_scale.run_registry_scale`.
"""

from __future__ import annotations

from pathlib import Path

import click

from fedem.errors import ConfigError, RegistryError


@click.command("simulate")
@click.option(
    "--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
    help="The federation's config (pipelines/simulate.yaml); omitted: the embedded default.",
)  # fmt: skip
@click.option("--registry-only", is_flag=True, help="Simulate the claim registry alone (real git, file hub).")
@click.option("--adapters", type=int, default=10_000, show_default=True, help="Adapters in the registry.")
@click.option("--contributors", type=int, default=1_000, show_default=True, help="Contributors (logins).")
@click.option("--claims-per-hour", type=float, default=1_000.0, show_default=True, help="Claim PRs per hour.")
@click.option("--hours", type=float, default=24.0, show_default=True, help="Simulated hours.")
@click.option("--concurrency", type=int, default=20, show_default=True, help="Claim jobs at once (runners).")
@click.option(
    "--job-seconds", type=float, default=45.0, show_default=True, help="Simulated length of a claim job."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the workload.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Any field of the simulation's config (e.g. days=3, contributors.dropout=0.3); repeatable.",
)  # fmt: skip
@click.option(
    "--output", default=None, type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the report, metrics.json, config.yaml and work/ (default: runs/simulate).",
)  # fmt: skip
@click.option(
    "--workdir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Put work/ here instead.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal only).")
def simulate(
    config_path: Path | None,
    registry_only: bool,
    adapters: int,
    contributors: int,
    claims_per_hour: float,
    hours: float,
    concurrency: int,
    job_seconds: float,
    seed: int,
    overrides: tuple[str, ...],
    output: Path | None,
    workdir: Path | None,
    progress: bool | None,
) -> None:
    """Simulate the federation (or with --registry-only the registry alone) on a simulated clock."""
    from fedem import config

    if not registry_only:
        ctx = click.get_current_context()
        for name in ("adapters", "contributors", "claims_per_hour", "hours", "concurrency", "job_seconds",
                     "seed", "workdir"):  # fmt: skip
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} applies to --registry-only; set the federation's fields with --set"
                )
        from fedem.sim.config import SimConfig
        from fedem.sim.run import run_simulation, summary

        cfg = config.load(SimConfig, config_path, overrides)
        result = run_simulation(cfg, output or Path("runs/simulate"), progress=progress)
        click.echo(summary(result))
        return
    if config_path is not None:
        raise ConfigError("--config is the federation's; --registry-only takes its sizes as flags")
    if output is None:
        raise ConfigError("--registry-only needs --output")
    from fedem.sim.registry_config import RegistrySimConfig
    from fedem.sim.registry_scale import run_registry_scale, summary

    sizes = {
        "adapters": adapters, "contributors": contributors, "claims_per_hour": claims_per_hour,
        "hours": hours, "concurrency": concurrency, "job_seconds": job_seconds, "seed": seed,
    }  # fmt: skip
    items = dict(config.parse_override(o) for o in overrides)
    cfg = config.load(RegistrySimConfig, None, {**sizes, **items})
    try:
        report = run_registry_scale(cfg, output, workdir=workdir, progress=progress)
    except FileExistsError as err:
        raise ConfigError(str(err)) from None
    click.echo(summary(report))
    click.echo(f"wrote {output / 'metrics.json'}")
    if not report.ok:
        raise RegistryError(f"invariants violated; first: {report.invariants.examples[0]}")


COMMANDS: tuple[click.Command, ...] = (simulate,)
