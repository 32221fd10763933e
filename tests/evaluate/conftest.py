"""Evaluation fixtures: a few-step adapter on the shared tiny base."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def eval_adapter(tiny_base, tmp_path_factory):
    """A fresh adapter trained a few steps on tiny_base (en/hi/te), folder of the package."""
    from fedem.data import DataSpec, SourceSpec
    from fedem.train import FinetuneConfig, TrainSpec, finetune

    out = tmp_path_factory.mktemp("eval-adapter") / "run"
    cfg = FinetuneConfig(
        base=str(tiny_base),
        name="evaldemo",
        contributor="alice",
        data=DataSpec(sources=(SourceSpec(embedded="hi"),), block_size=64, heldout_max_blocks=4),
        train=TrainSpec(steps=4, batch_size=4, warmup_steps=1, log_every=2, save_every=100, lr=1e-2),
        output=str(out),
    )
    finetune(cfg, progress=False, log=lambda *_: None)
    return out / "adapter"
