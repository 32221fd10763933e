"""CLI commands: pretrain, finetune, perplexity, generate."""

from __future__ import annotations

import click

from fedem import config as cfgio


def _overrides(sets: tuple[str, ...], **flags) -> list[str]:
    """``--set`` pairs plus named flags (flags win), as ``key=value`` strings."""
    out = list(sets)
    out += [f"{k}={v}" for k, v in flags.items() if v is not None]
    return out


_config_opt = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Job YAML (see pipelines/). Omitted: built-in defaults.",
)
_set_opt = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config field, e.g. --set train.steps=100 (repeatable).",
)
_resume_opt = click.option(
    "--resume", is_flag=True, help="Continue the run in --output from its last checkpoint."
)
_quiet_opt = click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")


@click.command()
@_config_opt
@click.option(
    "--output", type=click.Path(file_okay=False), default=None, help="Run folder (overrides output)."
)
@_resume_opt
@_set_opt
@_quiet_opt
def pretrain(config_path, output, resume, sets, no_progress):
    """Pretrain Seshu from scratch, or continue a checkpoint (CPT)."""
    from fedem.model.seshu import quiet_transformers
    from fedem.train import PretrainConfig
    from fedem.train import pretrain as run

    quiet_transformers()
    cfg = cfgio.load(PretrainConfig, config_path, _overrides(sets, output=output))
    run(cfg, resume=resume, progress=not no_progress)


@click.command()
@_config_opt
@click.option("--base", type=click.Path(), default=None, help="Base model folder (overrides base).")
@click.option(
    "--adapter",
    default=None,
    help="Adapter to continue (a relay hop): a local folder, or with --hub the adapter's NAME.",
)
@click.option(
    "--hub",
    "hub_url",
    default=None,
    help="Pull --adapter NAME from this hub (file://PATH or hf://ORG), validate it, continue it.",
)
@click.option("--revision", default=None, help="With --hub: the revision to continue. Default: the head.")
@click.option("--new", is_flag=True, help="With --hub: start adapter NAME fresh (its repo must be empty).")
@click.option(
    "--output", type=click.Path(file_okay=False), default=None, help="Run folder (overrides output)."
)
@_resume_opt
@_set_opt
@_quiet_opt
def finetune(config_path, base, adapter, hub_url, revision, new, output, resume, sets, no_progress):
    """LoRA-finetune an adapter on the base model (fresh, or continuing --adapter)."""
    from fedem.errors import ConfigError
    from fedem.model.seshu import quiet_transformers
    from fedem.train import FinetuneConfig
    from fedem.train import finetune as run

    quiet_transformers()
    if hub_url is None:
        if revision or new:
            raise ConfigError("--revision and --new need --hub (without it, --adapter is a local folder)")
        cfg = cfgio.load(
            FinetuneConfig, config_path, _overrides(sets, base=base, adapter=adapter, output=output)
        )
        run(cfg, resume=resume, progress=not no_progress)
        return
    from fedem.relay import relay_finetune

    if not adapter:
        raise ConfigError("--hub needs --adapter NAME (the adapter to continue, or with --new to start)")
    cfg = cfgio.load(FinetuneConfig, config_path, _overrides(sets, base=base, output=output))
    relay_finetune(cfg, hub_url, adapter, revision, new=new, resume=resume, progress=not no_progress)


@click.command()
@click.argument("model_dir", type=click.Path())
@click.option(
    "--data",
    "data_path",
    type=click.Path(),
    default=None,
    help="Text/JSONL/parquet file to score. Omitted: the embedded corpus' held-out split.",
)
@click.option("--adapter", type=click.Path(), default=None, help="Score with this LoRA adapter applied.")
@click.option("--block-size", type=int, default=256, show_default=True)
@click.option("--max-blocks", type=int, default=256, show_default=True)
def perplexity(model_dir, data_path, adapter, block_size, max_blocks):
    """Held-out bits per byte of a model (lower is better)."""
    from fedem.evaluate.run import score_model_dir
    from fedem.model.seshu import quiet_transformers

    quiet_transformers()
    res = score_model_dir(model_dir, data_path, adapter=adapter, block_size=block_size, max_blocks=max_blocks)
    click.echo(f"bits/byte {res['bits_per_byte']:.4f} over {res['positions']:,} positions ({res['data']})")


@click.command()
@click.argument("model_dir", type=click.Path())
@click.option("--prompt", required=True, help="Text to continue.")
@click.option("--adapter", type=click.Path(), default=None, help="Apply this LoRA adapter.")
@click.option("--max-new-tokens", type=click.IntRange(1, 100_000), default=120, show_default=True)
@click.option("--temperature", type=click.FloatRange(0), default=0.8, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=click.IntRange(1), default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def generate(model_dir, prompt, adapter, max_new_tokens, temperature, top_k, seed):
    """Generate a continuation of --prompt."""
    from fedem.adapter.load import load_for_inference
    from fedem.model.generate import generate_text
    from fedem.model.seshu import quiet_transformers

    quiet_transformers()
    model = load_for_inference(model_dir, adapter)
    click.echo(
        prompt
        + generate_text(
            model, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed
        )
    )


COMMANDS: tuple[click.Command, ...] = (pretrain, finetune, perplexity, generate)
