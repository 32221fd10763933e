"""One Clock drives every stamp: provenance ``created``, file:// revision times, registry commits.

The simulator runs the whole federation on simulated time; that works only if nothing reads the
machine's clock behind its back. Here one ManualClock, far from today, is the only time source.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from fedem.clock import UTC, ManualClock, format_time, parse_time
from fedem.hub.filehub import FileHub
from fedem.registry.model import parse_adapter
from fedem.registry.ops import reconcile_remote
from fedem.relay import push_adapter

from ._helpers import git, make_adapter, remote_file

START = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_one_clock_stamps_provenance_hub_and_registry(tiny_base, tmp_path, make_remote):
    from fedem.data import DataSpec, SourceSpec
    from fedem.train import FinetuneConfig, TrainSpec, finetune

    clock = ManualClock(START)
    remote = make_remote([make_adapter("seshu-hi", holder="alice", since=START)])
    hub = FileHub(tmp_path / "hub", clock=clock)
    hub.init()

    clock.advance(minutes=10)
    cfg = FinetuneConfig(
        base=str(tiny_base),
        name="seshu-hi",
        contributor="alice",
        data=DataSpec(sources=(SourceSpec(embedded="hi"),), block_size=64, heldout_max_blocks=4),
        train=TrainSpec(steps=2, batch_size=2, warmup_steps=0, save_every=100, log_every=1),
        output=str(tmp_path / "run"),
    )
    finetune(cfg, progress=False, log=lambda *_: None, clock=clock)
    record = json.loads((tmp_path / "run" / "adapter" / "fedem.json").read_text())
    assert parse_time(record["created"]) == START + timedelta(minutes=10)

    clock.advance(minutes=20)
    rev = push_adapter(hub, "seshu-hi", tmp_path / "run", author="alice")
    assert rev.time == START + timedelta(minutes=30)

    clock.advance(minutes=30)
    report = reconcile_remote(tmp_path / "clone", str(remote), hub=hub, clock=clock)
    assert [(e.kind, e.at, e.revision) for e in report.events] == [("hop", format_time(rev.time), rev.id)]
    assert git(remote, "log", "-1", "--format=%ct", "registry") == str(int(clock.now().timestamp()))
    hop = parse_adapter(
        remote_file(remote, "registry/adapters/seshu-hi.yaml"), "registry/adapters/seshu-hi.yaml"
    ).hops[-1]
    assert (hop.time, hop.claimed_at) == (format_time(START + timedelta(minutes=30)), format_time(START))
