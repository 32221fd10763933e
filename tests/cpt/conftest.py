"""CPT fixtures: a root pretrained on a *prefix* of three languages (so later text is new data),
published on a file:// hub whose clock, like the tags' and the records', is one ManualClock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from fedem.clock import UTC, ManualClock
from fedem.data import DataSpec, SourceSpec
from fedem.hub.filehub import FileHub

T0 = datetime(2026, 12, 1, 3, 17, tzinfo=UTC)
LANGS = ("en", "hi", "te")
ROOT_DOCS = 60  # the root pretrains on each language's first 60 documents


def data(langs=LANGS, max_documents: int | None = None, **kw) -> DataSpec:
    kw.setdefault("block_size", 64)
    kw.setdefault("heldout_max_blocks", 4)
    return DataSpec(sources=tuple(SourceSpec(embedded=x, max_documents=max_documents) for x in langs), **kw)


def cpt_config(output: Path, *, langs=LANGS, steps: int = 3, lr: float = 3e-3, **kw):
    """A CptConfig of a few tiny steps, scored on the three languages' held-out blocks."""
    from fedem.cpt import CptConfig, CptEval
    from fedem.train import TrainSpec

    return CptConfig(
        repo="seshu",
        data=kw.pop("data", None) or data(langs),
        train=TrainSpec(steps=steps, batch_size=4, warmup_steps=1, lr=lr, log_every=100, save_every=100),
        eval=CptEval(sources=tuple(SourceSpec(embedded=x) for x in LANGS), max_blocks=4, batch_size=8),
        output=str(output),
        **kw,
    )


@pytest.fixture(scope="session")
def cpt_root(tmp_path_factory) -> Path:
    """A tiny Seshu pretrained for 12 steps on the first documents of en, hi and te: a run folder."""
    from fedem.train import ModelSpec, PretrainConfig, TrainSpec, pretrain

    out = tmp_path_factory.mktemp("cpt-root") / "run"
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny"),
        data=data(max_documents=ROOT_DOCS),
        train=TrainSpec(steps=12, batch_size=4, warmup_steps=2, lr=3e-3, log_every=100, save_every=100),
        output=str(out),
    )
    pretrain(cfg, progress=False, log=lambda *_: None, clock=ManualClock(T0))
    return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def root_hub(cpt_root, tmp_path, clock, monkeypatch):
    """A file:// hub whose repo ``seshu`` holds the root checkpoint, tagged ``seshu-20261201``."""
    from fedem.publish import publish_root

    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))
    hub = FileHub(tmp_path / "hub", clock=clock)
    hub.init()
    published = publish_root(hub, cpt_root, author="maintainer", clock=clock)
    assert published.tag == "seshu-20261201"
    return hub
