"""The loop closed, CLI only: relayed hops are gated, merged, published, marked, and followed.

Two contributors relay ``seshu-te`` on Telugu; a third pushes ``seshu-hi`` trained on random
bytes. ``fedem nightly`` accepts te, rejects hi with its reason, publishes a checkpoint whose
card lists te's revision and credit, and marks te's hops ``merged_into``. A second night
publishes nothing. Then te's next hop starts from a zero delta on the new checkpoint (reset)
and hi's continues its weights on it (rebased); push accepts both, and lineage shows them.
Real git, a real file:// hub, tiny real training; nothing mocked.
"""

from __future__ import annotations

import json
import random
import re
import shutil

import pytest

from fedem.adapter import lora
from fedem.hub import open_hub
from fedem.model import load_model
from fedem.publish.history import read_history
from fedem.testing.federation import pretrain_base, write_private_heldout

from ._world import claim, fedem, git, hop, make_world, reconcile, registry_file

pytestmark = pytest.mark.timeout(900)  # several tiny trainings and three gate runs on shared cores

HOP = (
    "--set train.steps=30 --set train.lr=0.005 --set train.batch_size=8 --set train.warmup_steps=2 "
    "--set train.log_every=100 --set train.save_every=1000 --set data.block_size=64 "
    "--set data.heldout_fraction=0.2 --set data.heldout_max_blocks=8 "
)
TE = HOP + '--set data.replay=0.8 --set data.sources=[{"embedded":"te"}]'
NIGHTLY = """
gate:
  languages: [en, hi, te]
  docs_per_language: 24
  min_docs: 8
  resamples: 1000
  max_length: 512
  delta: 0.02   # a 120-step model: a Telugu hop costs Hindi ~0.008 bits/byte (upper bound ~0.014)
registry:
  remote: {remote}
output: {output}
"""


@pytest.fixture(scope="module")
def root_model(tmp_path_factory):
    return pretrain_base(tmp_path_factory.mktemp("nightly-root") / "run")


@pytest.fixture
def world(tmp_path, monkeypatch, root_model):
    world = make_world(tmp_path, monkeypatch)
    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEDEM_HELDOUT", str(write_private_heldout(tmp_path / "private" / "heldout.jsonl")))
    monkeypatch.setenv("FEDEM_GATE_SALT", "e2e-salt")
    out = fedem("publish", root_model, "--hub", world["hub"], "--author", "maintainer")
    world["root"] = re.search(r"^revision (\w+)$", out, re.M).group(1)
    rng = random.Random(0)
    noise = "\n\n".join(
        "".join(chr(rng.randrange(0x20, 0x100)) for _ in range(rng.randrange(100, 400))) for _ in range(300)
    )
    (tmp_path / "noise.txt").write_text(noise, encoding="utf-8")
    world["noise"] = HOP + f'--set data.sources=[{{"path":"{tmp_path / "noise.txt"}"}}]'
    world["config"] = tmp_path / "nightly.yaml"
    world["config"].write_text(NIGHTLY.format(remote=world["remote"], output=tmp_path / "nightly"))
    return world


def nightly(world, *extra) -> str:
    return fedem(
        "nightly",
        "--config",
        world["config"],
        "--hub",
        world["hub"],
        "--repo",
        world["tmp"] / "n.git",
        *extra,
    )


def relay(world, login, adapter, run, monkeypatch, *, new=False):
    claim(world, login, adapter)
    folder, log = hop(world, "hub:seshu", login, monkeypatch, new=new, adapter=adapter, run=run)
    assert "hop" in reconcile(world)
    return folder, log


def test_relay_gate_merge_publish_and_follow(world, monkeypatch, tmp_path):
    hub = world["hub"]
    relay(world, "alice", "seshu-te", TE, monkeypatch, new=True)
    relay(world, "bob", "seshu-te", TE, monkeypatch)
    hi_first, _ = relay(world, "carol", "seshu-hi", world["noise"], monkeypatch, new=True)
    te_hops = registry_file(world, "seshu-te").hops
    assert [h.contributor for h in te_hops] == ["alice", "bob"]

    registry_before = git(world["remote"], "rev-parse", "registry")
    dry = nightly(world, "--dry-run")
    assert "would publish a merge of seshu-te@" in dry and "mark 2 hops merged" in dry, dry
    assert git(world["remote"], "rev-parse", "registry") == registry_before, "a dry run writes nothing"
    assert not (tmp_path / "nightly").exists()

    out = nightly(world)
    assert re.search(r"seshu-te +\w+ +accept", out), out
    hi_row = re.search(r"seshu-hi +\w+ +reject +(\w+)", out)
    assert hi_row and hi_row.group(1) in ("no_gain", "harmful"), out
    tag = re.search(r"published seshu@(\w+) as (seshu-\d{8}(?:-\d+)?)$", out, re.M)
    assert tag, out
    new_ckpt = tag.group(1)

    # The card: te's revision and credit with its contributors; nothing of carol or hi.
    pulled = tmp_path / "pulled"
    fedem("pull-checkpoint", "--hub", hub, "--revision", new_ckpt, "--output", pulled)
    card = (pulled / "README.md").read_text()
    assert te_hops[-1].revision in card and "alice" in card and "bob" in card
    assert "carol" not in card and "seshu-hi" not in card
    assert "base_model_relation: merge" in card
    record = json.loads((pulled / "fedem.json").read_text())
    assert record["parent"]["revision"] == world["root"] and record["relation"] == "merge"
    assert record["nightly"]["merged"][0]["hops"] == [h.revision for h in te_hops]
    merged_te = registry_file(world, "seshu-te").hops
    assert [h.merged_into for h in merged_te] == [new_ckpt, new_ckpt]
    hi_hops = registry_file(world, "seshu-hi").hops
    assert hi_hops[0].merged_into is None and hi_hops[0].rejected_on == world["root"]
    report = json.loads((tmp_path / "nightly" / "nightly-report.json").read_text())
    assert report["published"] == new_ckpt and set(report["seconds"]) >= {"read", "pull", "gate", "merge"}

    # A second night: te is merged, hi was trained on the old checkpoint; nothing is published.
    again = nightly(world)
    assert "nothing published" in again and "seshu-hi" in again
    assert open_hub(hub).head("seshu").id == new_ckpt

    # te continues from a zero delta on the new checkpoint; hi continues its weights on it.
    te_next, te_log = relay(world, "dave", "seshu-te", TE, monkeypatch)
    assert "reset after the merge into" in te_log
    hi_next, hi_log = relay(world, "erin", "seshu-hi", world["noise"], monkeypatch)
    assert "rebased from seshu@" in hi_log
    te_meta = json.loads((te_next / "fedem.json").read_text())
    hi_meta = json.loads((hi_next / "fedem.json").read_text())
    assert te_meta["follow"]["kind"] == "reset" and te_meta["follow"]["merged_into"] == new_ckpt
    assert hi_meta["follow"] == {
        "kind": "rebased", "repo": "seshu", "source": world["root"], "onto": new_ckpt, "merged_into": None,
    }  # fmt: skip
    assert te_meta["base"]["revision"] == new_ckpt and hi_meta["base"]["revision"] == new_ckpt
    # Push accepts exactly the move the hub's records allow: a forged kind, or a change of base
    # with no follow record at all, is refused in one line and publishes nothing.
    te_head = open_hub(hub).head("seshu-te").id
    for forge, needle in (
        (lambda m: m["follow"].update(kind="rebased", merged_into=None), "allow only: reset after the merge"),
        (lambda m: m.pop("follow"), "different base"),
    ):
        forged = tmp_path / f"forged-{len(needle)}"
        shutil.copytree(te_next, forged)
        meta = json.loads((forged / "fedem.json").read_text())
        forge(meta)
        (forged / "fedem.json").write_text(json.dumps(meta))
        out = fedem("push", "seshu-te", forged, "--hub", hub, "--parent", te_hops[-1].revision, expect=2)
        assert needle in out and out.count("\n") == 1, out
    assert open_hub(hub).head("seshu-te").id == te_head
    # Each hop's bpb_before is its starting model's held-out score. Reset: the checkpoint itself
    # (B = 0, a zero delta). Rebased: the checkpoint with carol's weights still applied.
    model = load_model(pulled)
    assert te_meta["metrics"]["bpb_before"] == pytest.approx(_bpb(model, '[{"embedded":"te"}]'), rel=1e-5)
    noise = f'[{{"path":"{tmp_path / "noise.txt"}"}}]'
    bare = _bpb(model, noise)
    carried = _bpb(lora.load_trainable(model, hi_first, model.config.model_type), noise)
    assert hi_meta["metrics"]["bpb_before"] == pytest.approx(carried, rel=1e-5)
    assert abs(carried - bare) > 1e-3, "carol's weights change the model: the rebase carried them"

    assert "reset after merge into" in fedem("lineage", "seshu-te", "--hub", hub)
    assert "rebased onto" in fedem("lineage", "seshu-hi", "--hub", hub)
    history = read_history(open_hub(hub), "seshu", open_hub(hub).head("seshu"))
    assert [r.id for r in history.chain] == [new_ckpt, world["root"]]


def _bpb(model, sources: str) -> float:
    """Held-out bits/byte on the hop's own held-out blocks, as the engine scores bpb_before."""
    from fedem import config as cfgio
    from fedem.data import DataSpec, build_dataset
    from fedem.evaluate.perplexity import bits_per_byte
    from fedem.train import TrainSpec

    spec = cfgio.load(
        DataSpec,
        None,
        [f"sources={sources}", "block_size=64", "heldout_fraction=0.2", "heldout_max_blocks=8"],
    )
    return bits_per_byte(model, build_dataset(spec).heldout, TrainSpec().eval_batch_size)
