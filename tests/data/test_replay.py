"""data.replay: a share of draws from the base's own mixture, never from its held-out documents."""

import json

import numpy as np
import pytest

from fedem.data import DataSpec, SourceSpec, build_dataset, split_heldout
from fedem.data.replay import base_mixture, with_replay
from fedem.data.sources import load_documents
from fedem.errors import ConfigError


def test_replay_mixes_the_base_sources_at_the_share():
    own = build_dataset(DataSpec(sources=(SourceSpec(embedded="hi"),), block_size=64, replay=0.3))
    mixture = DataSpec(sources=(SourceSpec(embedded="en"), SourceSpec(embedded="te")), heldout_fraction=0.2)
    mixed = with_replay(own, mixture)
    names = [s.name for s in mixed.stats]
    assert names == ["embedded:hi", "replay:embedded:en", "replay:embedded:te"]
    assert mixed.probs.sum() == pytest.approx(1) and mixed.probs[0] == pytest.approx(0.7)
    assert mixed.heldout.equal(own.heldout) and mixed.fingerprint != own.fingerprint
    # Only what the base trained on: its 20% held-out documents are never replayed.
    train_en, _ = split_heldout(load_documents(SourceSpec(embedded="en")), 0.2)
    assert mixed.stats[1].documents == len(train_en)
    draws = mixed.order(4000, seed=0)
    assert abs(np.mean(draws[:, 0] == 0) - 0.7) < 0.03
    off = build_dataset(DataSpec(sources=(SourceSpec(embedded="hi"),), block_size=64, replay=0.0))
    assert with_replay(off, mixture) is off


def test_base_mixture_reads_the_base_record(tmp_path):
    assert base_mixture(tmp_path) == DataSpec()  # nothing recorded: the embedded corpus
    spec = {"sources": [{"embedded": "ta"}], "heldout_fraction": 0.1}
    (tmp_path / "fedem.json").write_text(json.dumps({"config": {"data": spec}}))
    assert base_mixture(tmp_path).sources == (SourceSpec(embedded="ta"),)
    (tmp_path / "fedem.json").write_text(json.dumps({"config": {"data": {"block_size": "x"}}}))
    with pytest.raises(ConfigError, match="data.replay=0"):
        base_mixture(tmp_path)


def test_replay_share_is_validated():
    with pytest.raises(ValueError, match="replay"):
        DataSpec(replay=1.0)
