"""The checkpoint record (fedem.provenance.ModelRecord): 0.1.0 records read unchanged, new fields checked."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fedem.errors import ModelError
from fedem.provenance import DataCursor, ModelRecord, ParentRef, SourceCursor

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fedem-0.1.0-model.json"


def _meta() -> dict:
    return json.loads(FIXTURE.read_text())


def test_a_0_1_0_record_reads_and_round_trips_exactly():
    meta = _meta()
    record = ModelRecord.from_dict(copy.deepcopy(meta))
    assert record.parent is None and record.relation is None and record.cursor is None
    assert record.to_dict() == meta


def test_parent_relation_and_cursor_round_trip():
    cursor = DataCursor(64, 0.05, {"embedded:te": SourceCursor(234, "f" * 64, 1400)})
    record = ModelRecord.from_dict(
        {
            **_meta(),
            "parent": ParentRef("seshu", "a" * 40, "alice", "2026-12-01T03:17:00Z").to_dict(),
            "relation": "finetune",
            "cursor": cursor.to_dict(),
            "future_field": {"kept": True},
        }
    )
    assert (record.parent.revision, record.relation, record.cursor) == ("a" * 40, "finetune", cursor)
    again = ModelRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and again.to_dict()["future_field"] == {"kept": True}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"kind": "seshu-lora-adapter"}, "kind 'seshu-lora-adapter'"),
        ({"weights_sha256": "abc"}, "weights_sha256 must be a sha256"),
        ({"parameters": -1}, "parameters must be an integer"),
        ({"relation": "finetune"}, "parent and relation go together"),
        (
            {"parent": {"repo": "seshu", "revision": "../x"}, "relation": "merge"},
            "parent must be null or an object",
        ),
        ({"parent": {"repo": "seshu", "revision": "a" * 40}, "relation": "copy"}, "relation 'copy'"),
        ({"cursor": {"version": 1}}, "cursor: expected version, block_size"),
        ({"cursor": {"version": 2, "block_size": 64, "heldout_fraction": 0.05, "sources": {}}}, "version 2"),
        (
            {
                "cursor": {
                    "version": 1,
                    "block_size": 64,
                    "heldout_fraction": 0.05,
                    "sources": {"x": {"documents": 1}},
                }
            },
            "cursor.sources.x: expected documents",
        ),
        (
            {
                "cursor": {
                    "version": 1,
                    "block_size": 64,
                    "heldout_fraction": 0.05,
                    "sources": {"x": {"documents": 1, "documents_sha256": "f" * 64, "blocks": True}},
                }
            },
            "documents and blocks must be integers",
        ),
    ],
)
def test_a_malformed_record_is_refused_in_one_line(change, needle):
    with pytest.raises(ModelError) as err:
        ModelRecord.from_dict({**_meta(), **change})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_missing_field_is_named():
    meta = _meta()
    del meta["weights_sha256"], meta["data"]
    with pytest.raises(ModelError, match="missing data, weights_sha256"):
        ModelRecord.from_dict(meta)
