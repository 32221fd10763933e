"""A small federation's starting point, for tests and benchmarks: a tiny base and its private held-out set.

The base is a tiny Mamba-2 Seshu trained on en/hi/te long enough that a one-language hop can
help its language and harm the others. It holds out ``FRACTION`` of the documents (by text
hash), so each language has dozens of held-out documents; hops that use the same fraction
never train on what the gate scores.
"""

from __future__ import annotations

from pathlib import Path

LANGS = ("en", "hi", "te")
FRACTION = 0.2


def heldout_data(sources, **kw):
    """A DataSpec over ``sources`` with the federation's block size and held-out fraction."""
    from fedem.data import DataSpec

    return DataSpec(sources=sources, block_size=64, heldout_fraction=FRACTION, heldout_max_blocks=8, **kw)


def pretrain_base(out: Path, *, steps: int = 120, clock=None) -> Path:
    """Pretrain the tiny base into run folder ``out``; returns ``out/model``."""
    from fedem.data import SourceSpec
    from fedem.train import ModelSpec, PretrainConfig, TrainSpec, pretrain

    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny"),
        data=heldout_data(tuple(SourceSpec(embedded=lang) for lang in LANGS)),
        train=TrainSpec(steps=steps, batch_size=8, warmup_steps=5, log_every=50, save_every=1000, lr=1e-2),
        output=str(out),
    )
    pretrain(cfg, progress=False, log=lambda *_: None, clock=clock)
    return out / "model"


def write_private_heldout(path: Path) -> Path:
    """The private held-out set: the base's held-out documents of en/hi/te as JSONL."""
    from fedem.evaluate.heldout import embedded_heldout, write_heldout

    return write_heldout(path, embedded_heldout(FRACTION, LANGS))
