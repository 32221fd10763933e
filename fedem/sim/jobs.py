"""The configs of every job a simulated federation runs, built from one :class:`SimConfig`.

The same frozen job dataclasses the workflows load from ``pipelines/*.yaml``: the first
pretraining, each contributor's relay hop, the nightly, CPT, and the centralized reference's
rounds. One home for how the simulation's sizes map onto them: every job packs the same
``hop.block_size`` blocks and holds out the same ``heldout_fraction`` (held-out sets nest, so
nothing any job trained on is ever scored).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fedem.sim.config import SimConfig
from fedem.sim.world import PUBLISHER, Contributor, World

REPO = "seshu"  # the checkpoint repo on the simulated hub
QUIET = 10_000  # log and save intervals past any simulated run: hops log nothing and keep no checkpoints


def data_spec(cfg: SimConfig, sources, **extra):
    """A DataSpec over ``sources`` with the run's block size and held-out fraction."""
    from fedem.data import DataSpec

    return DataSpec(
        sources=tuple(sources),
        block_size=cfg.hop.block_size,
        heldout_fraction=cfg.heldout_fraction,
        heldout_max_blocks=8,
        **extra,
    )


def train_spec(cfg: SimConfig, *, steps: int, lr: float, seed: int, batch_size: int | None = None, **extra):
    """A TrainSpec of ``steps`` quiet steps (no logs, no intermediate checkpoints)."""
    from fedem.train import TrainSpec

    return TrainSpec(
        steps=steps,
        batch_size=batch_size or cfg.hop.batch_size,
        lr=lr,
        log_every=QUIET,
        save_every=QUIET,
        seed=seed,
        **extra,
    )


def local_sources(files: dict[str, Path]):
    """One named source per language file (the names CPT's data cursor matches on)."""
    from fedem.data import SourceSpec

    return tuple(SourceSpec(path=str(p), name=lang) for lang, p in files.items())


def pretrain_config(cfg: SimConfig, files: dict[str, Path], output: Path):
    """The first checkpoint: ``cfg.base`` on the base's share of each language."""
    from fedem.train import ModelSpec, PretrainConfig

    b = cfg.base
    return PretrainConfig(
        model=ModelSpec(preset=b.preset, seed=cfg.seed),
        data=data_spec(cfg, local_sources(files)),
        train=train_spec(cfg, steps=b.steps, lr=b.lr, seed=cfg.seed, batch_size=b.batch_size, warmup_steps=5),
        output=str(output),
    )


def lora_spec(cfg: SimConfig):
    from fedem.adapter.lora import LoraSpec

    return LoraSpec(r=cfg.hop.rank, alpha=2 * cfg.hop.rank)


def hop_config(cfg: SimConfig, world: World, who: Contributor, name: str, out: Path, *, seed: int):
    """One relay hop: the contributor's shard, on the newest checkpoint (``hub:seshu``)."""
    from fedem.train.config import FinetuneConfig

    h = cfg.hop
    return FinetuneConfig(
        base=f"hub:{REPO}",
        name=name,
        contributor=who.login,
        # A CPT checkpoint names the maintainers' files by file name; contributors keep a copy.
        data=data_spec(cfg, who.sources(), replay=h.replay, replay_from=str(world.corpus_dir)),
        train=train_spec(
            cfg,
            steps=cfg.contributors.steps,
            lr=h.lr,
            seed=seed,
            warmup_steps=h.warmup_steps,
            weight_decay=0.0,
        ),
        lora=lora_spec(cfg),
        output=str(out),
    )


def central_config(cfg: SimConfig, base: Path, sources, steps: int, round_: int, out: Path):
    """One round of the centralized reference: a LoRA on the union of the shards, no replay."""
    from fedem.train.config import FinetuneConfig

    h = cfg.hop
    return FinetuneConfig(
        base=str(base),
        name="centralized",
        contributor="reference",
        data=data_spec(cfg, sources, replay=0.0),
        train=train_spec(
            cfg, steps=steps, lr=h.lr, seed=cfg.seed + round_, warmup_steps=h.warmup_steps, weight_decay=0.0
        ),
        lora=lora_spec(cfg),
        output=str(out),
    )


def nightly_config(cfg: SimConfig, world: World, night: int):
    """Night ``night``'s NightlyConfig: the gate on the simulated languages, its own folder."""
    from fedem.nightly.config import NightlyConfig, RegistrySource

    return NightlyConfig(
        repo=REPO,
        registry=RegistrySource(remote=str(world.remote), cache=str(world.folder / "git" / "nightly.git")),
        gate=dataclasses.replace(cfg.gate, languages=tuple(cfg.languages)),
        merge=cfg.merge,
        output=str(world.folder / "nightly" / f"night-{night:02d}"),
        author=PUBLISHER,
    )


def cpt_config(cfg: SimConfig, world: World, night: int):
    """A scheduled CPT run: the maintainers' growing files; published only if no language regresses."""
    from fedem.cpt.config import CptConfig, CptEval

    sources = local_sources(world.corpus)
    return CptConfig(
        repo=REPO,
        data=data_spec(cfg, sources),
        train=train_spec(cfg, steps=cfg.cpt.steps, lr=cfg.cpt.lr, seed=cfg.seed + night, warmup_steps=2),
        # 64 blocks (4 KB) per language: at 16, a run passed that cost Hindi 0.02 bits/byte in the report.
        eval=CptEval(sources=sources, max_blocks=64, batch_size=16, delta=cfg.gate.delta),
        output=str(world.folder / "cpt" / f"night-{night:02d}"),
        author=PUBLISHER,
    )
