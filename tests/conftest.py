"""Shared fixtures: offline environment, tiny data and a tiny pretrained Seshu built on the spot."""

from __future__ import annotations

import os

import pytest

# No hub at test time, ever: anything that tries the network fails loudly instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(autouse=True, scope="session")
def _hf_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    os.environ["HF_HOME"] = str(home)
    os.environ["HF_DATASETS_CACHE"] = str(home / "datasets")
    yield home


def _tiny_data(**kw):
    from fedem.data import DataSpec, SourceSpec

    kw.setdefault("block_size", 64)
    return DataSpec(
        sources=(SourceSpec(embedded="en"), SourceSpec(embedded="hi"), SourceSpec(embedded="te")), **kw
    )


def _tiny_train(**kw):
    from fedem.train import TrainSpec

    defaults = dict(steps=12, batch_size=4, warmup_steps=2, log_every=4, save_every=4, lr=3e-3)
    return TrainSpec(**{**defaults, **kw})


@pytest.fixture
def tiny_data():
    """Factory: a DataSpec over three embedded languages with 64-byte blocks."""
    return _tiny_data


@pytest.fixture
def tiny_train():
    """Factory: a TrainSpec of a dozen small steps, checkpointing every 4."""
    return _tiny_train


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A tiny Mamba-2 Seshu pretrained for a few steps: the run folder (model under model/)."""
    from fedem.train import ModelSpec, PretrainConfig, pretrain

    out = tmp_path_factory.mktemp("base") / "run"
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny"), data=_tiny_data(), train=_tiny_train(steps=20), output=str(out)
    )
    pretrain(cfg, progress=False, log=lambda *_: None)
    return out
