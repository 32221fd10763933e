"""Adapters already published stay usable: a ``fedem.json`` written by fedem 0.1.0 validates and relays.

The fixture is the record exactly as 0.1.0 wrote it. Only the two hashes that bind a record to
its bytes (its weights, its base) are pointed at this test's tiny model; every other field,
name and layout is the old one.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedem.adapter import validate_adapter
from fedem.io import sha256_file
from fedem.model import weights_sha256
from fedem.provenance import AdapterRecord
from fedem.relay import push_adapter, relay_finetune

from .conftest import copy_adapter, relay_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OLD = json.loads((FIXTURES / "fedem-0.1.0-adapter.json").read_text())


def _old_package(adapter_pkg: Path, tiny_base: Path, dest: Path) -> Path:
    folder = copy_adapter(adapter_pkg, dest)
    old = json.loads(json.dumps(OLD))
    old["weights_sha256"] = sha256_file(folder / "adapter_model.safetensors")
    old["base"]["sha256"] = weights_sha256(tiny_base)
    (folder / "fedem.json").write_text(json.dumps(old))
    return folder


def test_old_record_reads_and_round_trips():
    record = AdapterRecord.from_dict(OLD)
    assert record.to_dict() == OLD  # nothing dropped, nothing added, nothing reordered in meaning
    assert (record.adapter, record.contributor, record.parent) == ("demo", "alice", None)


def test_old_adapter_validates_and_relays(adapter_pkg, tiny_base, file_hub, tmp_path, relay_env):
    folder = _old_package(adapter_pkg, tiny_base, tmp_path / "old")
    report = validate_adapter(folder, tiny_base, name="demo")
    assert (report.contributor, report.bpb_after) == ("alice", OLD["metrics"]["bpb_after"])
    first = push_adapter(file_hub, "demo", folder)
    hop = relay_finetune(
        relay_config(tiny_base, tmp_path / "hop", contributor="bob"),
        file_hub.url,
        "demo",
        progress=False,
        log=lambda *_: None,
    )
    assert hop.parent == first and hop.report.parent_revision == first.id
    second = push_adapter(file_hub, "demo", hop.adapter_dir)
    assert second.parent == first.id
