"""data.replay: a share of draws from the base's own mixture, never from its held-out documents."""

import dataclasses
import json

import numpy as np
import pytest

from fedem.data import DataSpec, SourceSpec, build_dataset, split_heldout
from fedem.data.replay import base_mixture, with_replay
from fedem.data.sources import load_documents
from fedem.data.spec import embedded_dir
from fedem.errors import ConfigError, DataError

EMBEDDED = embedded_dir()


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


def test_a_published_base_names_local_files_by_name_and_replay_from_finds_them(tmp_path):
    # A CPT checkpoint records its local sources by file name only (never the publisher's path).
    base = tmp_path / "base"
    base.mkdir()
    spec = {
        "sources": [
            {"path": "hi.txt", "name": "hi"},
            {"embedded": "te"},
            {"path": "/abs/ta.txt", "name": "ta"},
        ]
    }
    (base / "fedem.json").write_text(json.dumps({"config": {"data": spec}}))
    files = tmp_path / "maintainer-files"
    files.mkdir()
    (files / "hi.txt").write_text((EMBEDDED / "hi.txt").read_text(encoding="utf-8"), encoding="utf-8")
    found = base_mixture(base, files).sources
    assert found[0] == SourceSpec(path=str(files / "hi.txt"), name="hi")
    assert found[1:] == (
        SourceSpec(embedded="te"),
        SourceSpec(path="/abs/ta.txt", name="ta"),
    )  # kept as recorded
    hi_only = build_dataset(
        DataSpec(sources=(SourceSpec(embedded="en"),), block_size=64, replay=0.5, heldout_fraction=0.05)
    )
    mixed = with_replay(hi_only, dataclasses.replace(DataSpec(sources=found[:1]), heldout_fraction=0.05))
    assert [s.name for s in mixed.stats] == ["embedded:en", "replay:hi"]
    with pytest.raises(DataError, match="the base's source hi"):  # without it: a clear error, not a guess
        with_replay(hi_only, DataSpec(sources=base_mixture(base).sources[:1]))


def test_replay_share_is_validated():
    with pytest.raises(ValueError, match="replay"):
        DataSpec(replay=1.0)
