"""A nightly SIGKILLed at each dangerous point leaves the old checkpoint current or the new one
complete, and a rerun ends with every hop merged exactly once.

Points: after the merge (nothing published), inside the hub's publish (files half staged; the
revision renamed in but HEAD not moved), and after the publish but before the registry is
marked (the rerun repairs the marks from the checkpoint's record, and publishes nothing).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from fedem.hub import open_hub
from fedem.publish import pull_checkpoint
from fedem.publish.history import read_history
from fedem.testing.federation import pretrain_base, write_private_heldout

from ._world import GIT_ENV, claim, fedem, git, hop, make_world, reconcile, registry_file
from .test_nightly import NIGHTLY, TE

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A root checkpoint and one reconciled te hop, built once and copied for each test."""
    root = tmp_path_factory.mktemp("faults-world")
    with pytest.MonkeyPatch.context() as mp:
        world = make_world(root, mp)
        mp.setenv("FEDEM_CACHE", str(root / "cache"))
        model = pretrain_base(root / "base")
        fedem("publish", model, "--hub", world["hub"], "--author", "maintainer")
        claim(world, "alice", "seshu-te")
        hop(world, "hub:seshu", "alice", mp, new=True, adapter="seshu-te", run=TE)
        assert "hop" in reconcile(world)
    write_private_heldout(root / "heldout.jsonl")
    return root


@pytest.fixture
def world(prepared, tmp_path, monkeypatch):
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    for name in ("hub", "remote.git", "heldout.jsonl"):
        copy = shutil.copytree if (prepared / name).is_dir() else shutil.copyfile
        copy(prepared / name, tmp_path / name)
    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDEM_HELDOUT", str(tmp_path / "heldout.jsonl"))
    monkeypatch.setenv("FEDEM_GATE_SALT", "fault-salt")
    config = tmp_path / "nightly.yaml"
    config.write_text(NIGHTLY.format(remote=tmp_path / "remote.git", output=tmp_path / "nightly"))
    hub = f"file://{tmp_path / 'hub'}"
    args = ["nightly", "--config", config, "--hub", hub, "--repo", tmp_path / "n.git"]
    return {"hub": hub, "remote": tmp_path / "remote.git", "tmp": tmp_path, "args": [str(a) for a in args]}


def killed_nightly(world, point: str) -> None:
    """Run ``fedem nightly`` in a child, SIGKILL it when it pauses at ``point``."""
    env = {**os.environ, "FEDEM_TEST_KILL_POINT": point}
    child = subprocess.Popen(
        [sys.executable, "-m", "fedem", *world["args"]], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        for line in child.stdout:
            if line.strip() == f"paused:{point}":
                os.kill(child.pid, signal.SIGKILL)
                break
        else:
            pytest.fail(f"the nightly never reached {point}")
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("point", "published"),
    [("nightly-merged", False), ("copy", False), ("head", False), ("nightly-published", True)],
)
def test_kill_then_rerun_merges_each_hop_once(world, point, published):
    hub = open_hub(world["hub"])
    root = hub.head("seshu").id
    hop_rev = registry_file(world).hops[0].revision
    registry_before = git(world["remote"], "rev-parse", "registry")

    killed_nightly(world, point)
    head = hub.head("seshu")
    assert (head.id != root) is published
    if published:  # complete: it pulls and checks (files, weights hash, parent)
        ckpt = pull_checkpoint(hub, "seshu", head.id, cache_dir=world["tmp"] / "check")
        assert ckpt.record.parent.revision == root
    assert git(world["remote"], "rev-parse", "registry") == registry_before, "nothing marked yet"

    out = fedem(*world["args"])
    if published:
        assert "repaired 1 adapter file" in out and "nothing new" in out
    history = read_history(hub, "seshu", hub.head("seshu"))
    assert len(history.chain) == 2, "exactly one new checkpoint"
    assert history.merged_hops == {hop_rev: history.head.id}
    assert [h.merged_into for h in registry_file(world).hops] == [history.head.id]
    assert "nothing new" in fedem(*world["args"])
