import json

import numpy as np
import pytest

from fedem.config import from_dict
from fedem.data import (
    DataSpec,
    SourceSpec,
    build_dataset,
    encode_documents,
    load_documents,
    pack,
    split_heldout,
)
from fedem.data.mixture import mixture_probs, sample_order
from fedem.errors import ConfigError, DataError
from fedem.model.tokenizer import EOS_ID, PAD_ID


def test_packing_puts_no_padding_anywhere_and_eos_between_documents():
    docs = ["ab", "नमस्ते", "x" * 50, "c"]
    blocks = pack(docs, 8)
    stream = encode_documents(docs)
    assert (blocks != PAD_ID).all()
    assert blocks.shape == (len(stream) // 8, 8)
    # every document is followed by exactly one EOS, and EOS appears nowhere else
    assert (stream == EOS_ID).sum() == len(docs)
    ends = np.cumsum([len(d.encode()) + 1 for d in docs]) - 1
    assert (stream[ends] == EOS_ID).all()


def test_packed_training_data_has_no_padding_so_the_loss_sees_none(tiny_data):
    data = build_dataset(tiny_data())
    assert data.heldout.ne(PAD_ID).all()
    batch = data.gather(data.order(64, seed=0))
    assert batch.ne(PAD_ID).all() and batch.shape == (64, 64)


def test_heldout_text_never_appears_in_training_blocks(tiny_data):
    data = build_dataset(tiny_data(heldout_fraction=0.2))
    train_stream = b"".join(
        bytes((b[b >= 3] - 3).astype(np.uint8)) + b"\n" for blocks in data.train for b in blocks
    )
    for src in data.spec.sources:
        _, held = split_heldout(load_documents(src), data.spec.heldout_fraction)
        assert held, "fixture should hold some documents out"
        for doc in held:
            assert doc.encode() not in train_stream
    assert sum(s.heldout_documents for s in data.stats) > 0


def test_heldout_split_depends_on_text_only_and_keeps_duplicates_together():
    docs = [f"document {i}" for i in range(400)] + ["same"] * 5
    a_train, a_held = split_heldout(docs, 0.1)
    b_train, b_held = split_heldout(list(reversed(docs)), 0.1)
    assert sorted(a_held) == sorted(b_held)
    assert 20 < len(a_held) < 70
    assert ("same" in a_held) != ("same" in a_train)


def test_order_is_deterministic_and_seed_dependent(tiny_data):
    data = build_dataset(tiny_data())
    assert np.array_equal(data.order(100, 3), data.order(100, 3))
    assert not np.array_equal(data.order(100, 3), data.order(100, 4))


def test_order_visits_each_source_without_repeats_within_a_pass():
    sizes = [5, 50]
    order = sample_order(sizes, np.array([0.5, 0.5]), 40, seed=0)
    first_pass = order[order[:, 0] == 0][:5, 1]
    assert len(first_pass) == 5
    assert sorted(first_pass.tolist()) == [0, 1, 2, 3, 4]


def test_temperature_flattens_the_mixture():
    p1 = mixture_probs([900, 100], [1, 1], 1.0)
    p5 = mixture_probs([900, 100], [1, 1], 5.0)
    assert p1 == pytest.approx([0.9, 0.1])
    assert p5[1] > p1[1] and p5[1] < 0.5
    assert mixture_probs([900, 100], [1, 9], 1.0) == pytest.approx([0.5, 0.5])


def test_empirical_mixture_follows_probabilities():
    order = sample_order([100, 100, 100], np.array([0.6, 0.3, 0.1]), 20000, seed=1)
    freq = np.bincount(order[:, 0], minlength=3) / len(order)
    assert freq == pytest.approx([0.6, 0.3, 0.1], abs=0.02)


def test_fingerprint_is_stable_and_tracks_the_data(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("\n\n".join(f"doc {i} " * 20 for i in range(200)))
    spec = DataSpec(sources=(SourceSpec(path=str(f)),), block_size=32)
    fp1 = build_dataset(spec).fingerprint
    assert build_dataset(spec).fingerprint == fp1
    f.write_text(f.read_text() + "\n\nnew doc " * 30)
    assert build_dataset(spec).fingerprint != fp1
    assert str(f.read_text()[:20]) not in json.dumps(build_dataset(spec).provenance())


def test_local_jsonl_and_parquet_sources_read_through_datasets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": f"row {i} सोमवार", "other": i} for i in range(30)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.parquet"):
        docs = load_documents(SourceSpec(path=str(tmp_path / name)))
        assert docs == [r["text"] for r in rows]
    with pytest.raises(DataError, match="no field 'body'"):
        load_documents(SourceSpec(path=str(tmp_path / "d.jsonl"), text_field="body"))


def test_bad_sources_get_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_documents(SourceSpec(path=str(tmp_path / "missing.txt")))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        load_documents(SourceSpec(path=str(tmp_path / "x.csv")))
    with pytest.raises(DataError, match="cannot load"):
        load_documents(SourceSpec(dataset="nobody/nothing-here"))
    with pytest.raises(ConfigError, match="exactly one of embedded, path or dataset"):
        from_dict(SourceSpec, {"embedded": "hi", "path": "x.txt"})
    with pytest.raises(ConfigError, match="embedded: expected one of en, hi"):
        from_dict(SourceSpec, {"embedded": "xx"})
    short = tmp_path / "short.txt"
    short.write_text("tiny")
    with pytest.raises(DataError, match="no source yields a full training block"):
        build_dataset(DataSpec(sources=(SourceSpec(path=str(short)),), block_size=64))
