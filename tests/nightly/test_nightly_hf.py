"""The nightly on hf:// (the real HfApi against the loopback Hub): the checkpoint's tag sits on
the published commit SHA, and a date tag that already names another commit is never moved."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from fedem.clock import UTC, ManualClock, format_time
from fedem.data import SourceSpec
from fedem.gate.policy import GatePolicy
from fedem.hub.hfhub import HfHub
from fedem.nightly import NightlyConfig, RegistrySource, run_nightly
from fedem.publish import publish_root, pull_checkpoint
from fedem.registry.model import Hop
from fedem.relay import push_adapter, relay_finetune
from fedem.testing.fakehub import hf_client_env
from fedem.testing.federation import heldout_data, pretrain_base, write_private_heldout
from fedem.train import FinetuneConfig, TrainSpec

pytestmark = pytest.mark.timeout(900)
ORG = "fedem-test"
T0 = datetime(2026, 12, 1, 3, 17, tzinfo=UTC)


def test_nightly_publishes_on_hf_with_the_tag_on_the_commit_sha(
    fake_server, make_remote, tmp_path, monkeypatch
):
    from registry._helpers import make_adapter

    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDEM_HELDOUT", str(write_private_heldout(tmp_path / "heldout.jsonl")))
    monkeypatch.setenv("FEDEM_GATE_SALT", "hf-salt")
    clock = ManualClock(T0)
    fake_server.hub.reset()
    fake_server.hub.clock = clock.now
    base = pretrain_base(tmp_path / "base")
    with hf_client_env(fake_server.url, tmp_path / "hf_home", token="hf_maintainer"):
        hub = HfHub(ORG, endpoint=fake_server.url, cache_dir=tmp_path / "hf_cache", sleep=lambda _s: None)
        root = publish_root(hub, base, clock=clock)
        tags = fake_server.hub.repos[f"{ORG}/seshu"].tags
        assert root.tag == "seshu-20261201" and tags[root.tag] == root.revision.id
        tags["seshu-20261201-2"] = root.revision.id  # somebody took tonight's next name

        clock.advance(hours=1)
        cfg = FinetuneConfig(
            base="hub:seshu",
            name="seshu-te",
            contributor="alice",
            data=heldout_data((SourceSpec(embedded="te"),), replay=0.8),
            train=TrainSpec(steps=30, batch_size=8, warmup_steps=2, lr=5e-3, log_every=100, save_every=1000),
            output=str(tmp_path / "run-alice"),
        )
        hop = relay_finetune(cfg, hub, "seshu-te", new=True, progress=False, log=lambda *_: None, clock=clock)
        rev = push_adapter(hub, "seshu-te", hop.adapter_dir, author="alice-hf")
        adapter = make_adapter("seshu-te")
        adapter = dataclasses.replace(
            adapter,
            spec=dataclasses.replace(adapter.spec, languages=("te",)),
            hops=(Hop("alice", rev.id, format_time(rev.time), format_time(T0)),),
        )
        remote = make_remote([adapter])

        clock.advance(hours=1)
        nightly = NightlyConfig(
            repo="seshu",
            registry=RegistrySource(remote=str(remote), cache=str(tmp_path / "n.git")),
            gate=GatePolicy(
                languages=("en", "hi", "te"), docs_per_language=24, min_docs=8, resamples=1000,
                max_length=512, delta=0.02,
            ),
            output=str(tmp_path / "nightly"),
        )  # fmt: skip
        outcome = run_nightly(nightly, hub, clock=clock, log=lambda *_: None)
        assert outcome.published is not None, outcome.reason
        new = outcome.published.revision.id
        assert outcome.published.tag == "seshu-20261201-3", "the taken name is skipped, not moved"
        assert tags["seshu-20261201-2"] == root.revision.id and tags["seshu-20261201-3"] == new
        assert new == fake_server.hub.repos[f"{ORG}/seshu"].branches["main"], "the id is the commit SHA"
        ckpt = pull_checkpoint(hub, "seshu", "seshu-20261201-3", cache_dir=tmp_path / "check")
        assert ckpt.revision.id == new and ckpt.record.parent.revision == root.revision.id
