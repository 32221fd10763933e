"""CLI commands: evaluate (per-language bits/byte with paired CIs) and gate (the single-blind gate)."""

from __future__ import annotations

import re

import click

_LANGS = re.compile(r"[a-z]{2,3}(,[a-z]{2,3})*")


@click.command()
@click.argument("model_dir", type=click.Path())
@click.option(
    "--adapter",
    "adapters",
    multiple=True,
    type=click.Path(),
    help="Also score MODEL + this adapter (repeatable).",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=None,
    help='Held-out JSONL of {"text", "lang"} rows. Omitted: the embedded corpus\' held-out split.',
)
@click.option(
    "--lang",
    "langs",
    multiple=True,
    help="Score only this language (repeatable). Default: every language in the data.",
)
@click.option(
    "--max-length", type=int, default=2048, show_default=True, help="Rolling-window length (recorded)."
)
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.option("--resamples", type=int, default=2000, show_default=True, help="Paired bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--lm-eval", "use_lm_eval", is_flag=True, help="Score through lm-eval and fedem's shipped tasks instead."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="evaluation.json",
    show_default=True,
    help="JSON report.",
)
def evaluate(model_dir, adapters, data, langs, max_length, confidence, resamples, seed, use_lm_eval, output):
    """Per-language held-out bits/byte of MODEL, and of MODEL + each --adapter vs MODEL."""
    from fedem.evaluate.run import evaluate_model, format_report
    from fedem.model.seshu import quiet_transformers

    quiet_transformers()
    report = evaluate_model(
        model_dir,
        adapters,
        data=data,
        languages=langs or None,
        max_length=max_length,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        use_lm_eval=use_lm_eval,
        output=output,
    )
    click.echo(format_report(report))
    click.echo(f"wrote {output}")


def _submission(text: str, registry: str | None):
    from fedem.errors import ConfigError
    from fedem.gate.screen import Submission, targets_from_registry

    folder, sep, langs = text.rpartition(":")
    if sep and _LANGS.fullmatch(langs):
        return Submission(folder=folder, languages=tuple(langs.split(",")))
    if registry is None:
        raise ConfigError(
            f"--candidate {text}: expected DIR:LANG[,LANG] (or give --registry to read the spec)"
        )
    return Submission(folder=text, languages=targets_from_registry(text, registry))


@click.command()
@click.argument("base_dir", type=click.Path())
@click.option(
    "--candidate",
    "candidates",
    multiple=True,
    metavar="DIR[:LANGS]",
    help="A candidate adapter and its target languages, in arrival order (repeatable).",
)
@click.option(
    "--merged",
    multiple=True,
    type=click.Path(),
    help="An adapter merged earlier (duplicates of it are refused; repeatable).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False),
    default="pipelines/nightly.yaml",
    show_default=True,
)
@click.option(
    "--registry",
    type=click.Path(file_okay=False),
    default=None,
    help="Registry checkout: target languages of a DIR given without :LANGS.",
)
@click.option(
    "--date",
    "day",
    default=None,
    help="The gate's date (YYYY-MM-DD, it seeds the sample). Default: today, UTC.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="gate-report.json",
    show_default=True,
    help="Blind JSON report.",
)
def gate(base_dir, candidates, merged, policy_path, registry, day, output):
    """Decide candidate adapters single-blind: by content hash, on a sample drawn tonight."""
    from datetime import date, datetime, timezone

    from fedem.errors import ConfigError
    from fedem.gate.policy import load_policy
    from fedem.gate.run import run_gate
    from fedem.model.seshu import quiet_transformers

    quiet_transformers()
    subs = [_submission(c, registry) for c in candidates]
    if not subs:
        raise ConfigError("--candidate: give at least one candidate adapter")
    policy = load_policy(policy_path)
    try:
        when = date.fromisoformat(day) if day else datetime.now(timezone.utc).date()
    except ValueError:
        raise ConfigError(f"--date: expected YYYY-MM-DD, got {day!r}") from None
    report = run_gate(base_dir, subs, policy, day=when, merged=merged, output=output, log=click.echo)
    accepted = sum(c["decision"] == "accept" for c in report["candidates"])
    click.echo(f"{accepted}/{len(report['candidates'])} accepted; wrote {output}")


COMMANDS: tuple[click.Command, ...] = (evaluate, gate)
