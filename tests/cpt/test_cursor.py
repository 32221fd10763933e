"""The data cursor on its own (no training): hashes, draws without replacement, grown and changed sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedem.cpt.cursor import advance, documents_sha256, draw, plan, root_cursor, starts
from fedem.data import DataSpec, SourceSpec, build_dataset, load_documents
from fedem.errors import ConfigError, DataError
from fedem.provenance import DataCursor, ModelRecord, SourceCursor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _txt(path: Path, docs: list[str]) -> Path:
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _docs(n: int, start: int = 0) -> list[str]:
    return [
        f"document {i}: " + "some text that packs into blocks " * (1 + i % 3) for i in range(start, start + n)
    ]


def test_the_documents_hash_is_the_one_the_data_records():
    spec = DataSpec(sources=(SourceSpec(embedded="te", max_documents=50),), block_size=64)
    (stats,) = build_dataset(spec).stats
    assert documents_sha256(load_documents(spec.sources[0])) == stats.sha256


def test_a_root_counts_every_block_it_pretrained_on_as_consumed():
    record = ModelRecord.from_dict(json.loads((FIXTURES / "fedem-0.1.0-model.json").read_text()))
    cursor = root_cursor(record, "fixture")
    assert (cursor.block_size, cursor.heldout_fraction) == (64, 0.05)
    for src in record.data["sources"]:
        assert cursor.sources[src["name"]] == SourceCursor(
            src["documents"], src["sha256"], src["train_blocks"]
        )


def _cursor(spec: DataSpec, consumed: dict[str, int]) -> DataCursor:
    data = build_dataset(spec)
    return DataCursor(
        block_size=spec.block_size,
        heldout_fraction=spec.heldout_fraction,
        sources={s.name: SourceCursor(s.documents, s.sha256, consumed[s.name]) for s in data.stats},
    )


def test_draws_take_each_new_block_once_and_the_cursor_moves_past_them():
    # hi is wanted most (weight) but has only 5 new blocks: it runs out, and te fills the budget.
    spec = DataSpec(
        sources=(SourceSpec(embedded="hi", weight=1000), SourceSpec(embedded="te")), block_size=64
    )
    data = build_dataset(spec)
    n_hi = data.stats[0].train_blocks
    cursor = _cursor(spec, {"embedded:hi": n_hi - 5, "embedded:te": 100})
    p = plan(cursor, spec, data, budget=40, draws_per_step=8, where="test")
    assert p.steps == 40 and [s.start for s in p.sources] == [n_hi - 5, 100]
    order, p = draw(p, spec, seed=0)
    assert order.shape == (320, 2)
    pairs = {(int(s), int(b)) for s, b in order}
    assert len(pairs) == len(order), "no block is drawn twice"
    for s, sp in enumerate(p.sources):
        mine = order[order[:, 0] == s, 1]
        assert len(mine) == sp.take and sorted(mine) == list(range(sp.start, sp.start + sp.take))
    assert p.sources[0].take == 5, "a source that runs out drops out; the other fills the budget"
    moved = advance(cursor, p, data)
    assert moved.sources["embedded:hi"].blocks == n_hi and moved.sources["embedded:te"].blocks == 100 + 315
    again = plan(moved, spec, data, budget=40, draws_per_step=8, where="test")
    assert [s.start for s in again.sources] == [n_hi, 415]
    assert not np.array_equal(draw(again, spec, 0)[0], order)


def test_the_budget_shrinks_to_the_new_data_and_none_means_no_steps():
    spec = DataSpec(sources=(SourceSpec(embedded="te"),), block_size=64)
    data = build_dataset(spec)
    n = data.stats[0].train_blocks
    assert plan(_cursor(spec, {"embedded:te": n - 10}), spec, data, 100, 4, "t").steps == 2
    assert plan(_cursor(spec, {"embedded:te": n - 3}), spec, data, 100, 4, "t").steps == 0


def test_a_grown_source_continues_and_a_changed_one_is_refused(tmp_path):
    path = _txt(tmp_path / "news.txt", _docs(40))
    spec = DataSpec(sources=(SourceSpec(path=str(path)),), block_size=64)
    data = build_dataset(spec)
    cursor = _cursor(spec, {"news.txt": data.stats[0].train_blocks - 2})
    before = data.train[0].copy()
    _txt(path, _docs(40) + _docs(30, start=40))  # new text appended at the end
    grown = build_dataset(spec)
    assert np.array_equal(grown.train[0][: len(before)], before), "packing is prefix-stable"
    assert starts(cursor, spec, grown, "ckpt") == [len(before) - 2]
    _txt(path, ["an edited first document"] + _docs(69, start=1))
    with pytest.raises(DataError) as err:
        starts(cursor, spec, build_dataset(spec), "seshu@abc")
    msg = str(err.value)
    assert "\n" not in msg and "news.txt" in msg and "first 40 documents" in msg and "new source name" in msg
    renamed = DataSpec(sources=(SourceSpec(path=str(path), name="news-v2"),), block_size=64)
    assert starts(cursor, renamed, build_dataset(renamed), "ckpt") == [0], "a new name is new data"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"block_size": 128}, "data.block_size: 128"),
        ({"heldout_fraction": 0.02}, "data.heldout_fraction: 0.02"),
    ],
)
def test_block_numbers_need_the_cursors_block_size_and_split(change, field):
    spec = DataSpec(sources=(SourceSpec(embedded="te"),), block_size=64)
    cursor = _cursor(spec, {"embedded:te": 1})
    other = DataSpec(**{"sources": spec.sources, "block_size": 64, **change})
    with pytest.raises(ConfigError, match=field):
        starts(cursor, other, build_dataset(other), "t")
