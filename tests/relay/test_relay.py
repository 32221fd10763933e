"""A relay on a file:// hub: two contributors, three hops, lineage, and validation on every pull."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from fedem import config as cfgio
from fedem.cli import main
from fedem.errors import AdapterRejected, FedemError, HubError
from fedem.hub.filehub import FileHub
from fedem.relay import (
    format_lineage,
    lineage,
    merged_tag,
    pull_adapter,
    push_adapter,
    relay_finetune,
    tag_revision,
)

from .conftest import copy_adapter, one_line, relay_config, rewrite_weights

QUIET = dict(progress=False, log=lambda *_: None)


def test_three_hop_relay_two_contributors(tiny_base, file_hub, tmp_path, monkeypatch, relay_env):
    url = file_hub.url
    # Hop 1, alice: a fresh adapter, explicitly (--new).
    hop1 = relay_finetune(
        relay_config(tiny_base, tmp_path / "h1", contributor="alice"), url, "demo", new=True, **QUIET
    )
    assert hop1.parent is None and hop1.report.contributor == "alice"
    r1 = push_adapter(url, "demo", hop1.adapter_dir)

    # Hop 2, bob, through the CLI: finetune --hub pulls the head, validates it, continues it.
    cfg_path = cfgio.dump(relay_config(tiny_base, tmp_path / "unused"), tmp_path / "hop.yaml")
    env = {"FEDEM_CONTRIBUTOR": "bob"}
    runner = CliRunner()
    args = [
        "finetune",
        "--config",
        str(cfg_path),
        "--hub",
        url,
        "--adapter",
        "demo",
        "--output",
        str(tmp_path / "h2"),
    ]
    result = runner.invoke(main, [*args, "--no-progress"], env=env)
    assert result.exit_code == 0, result.output
    assert f"continuing demo@{r1.id[:12]} by alice" in result.output
    result = runner.invoke(main, ["push", "demo", str(tmp_path / "h2"), "--hub", url], env=env)
    assert result.exit_code == 0, result.output
    r2 = file_hub.head("demo")
    assert result.output.startswith(f"published demo@{r2.id[:12]} (parent {r1.id[:12]}) by bob")

    # Hop 3, alice again.
    hop3 = relay_finetune(relay_config(tiny_base, tmp_path / "h3", contributor="alice"), url, "demo", **QUIET)
    assert hop3.parent == r2
    r3 = push_adapter(url, "demo", hop3.adapter_dir)

    chain = lineage(url, "demo")
    assert [e.revision.id for e in chain] == [r3.id, r2.id, r1.id]
    assert [e.revision.parent for e in chain] == [r2.id, r1.id, None]
    assert [e.contributor for e in chain] == ["alice", "bob", "alice"]
    assert [e.revision.author for e in chain] == ["alice", "bob", "alice"]
    assert all(e.parent_matches for e in chain)
    for e in chain:
        assert math.isfinite(e.bpb_before) and math.isfinite(e.bpb_after) and e.steps == 4 and e.tokens > 0
    # Each hop started from its parent's weights: same held-out data, so the bits/byte a hop
    # measures before training is what its parent measured after (a silent fresh start would not be).
    newest_first = list(chain)
    for child, parent in zip(newest_first, newest_first[1:]):  # noqa: B905
        assert child.bpb_before == pytest.approx(parent.bpb_after, abs=1e-4)
    text = format_lineage(chain)
    assert text.splitlines()[0].split()[:3] == ["REVISION", "PARENT", "CONTRIBUTOR"]
    assert r3.id[:12] in text and "bob" in text and "!" not in text

    # Each hop changed the weights.
    weights = []
    for rev in (r1, r2, r3):
        folder = file_hub.download("demo", rev.id, tmp_path / "dl" / rev.id)
        weights.append(load_file(folder / "adapter_model.safetensors"))
    for before, after in zip(weights, weights[1:]):  # noqa: B905
        assert before.keys() == after.keys()
        assert any(not before[k].equal(after[k]) for k in before)

    # The nightly job's tag helper.
    tagged = tag_revision(url, "demo", r2.id, merged_tag("ckpt-001"))
    assert tagged.id == r2.id and "merged-ckpt-001" in tagged.tags
    meta = json.loads(file_hub.read_file("demo", "fedem.json", r3.id))
    assert meta["parent"]["revision"] == r2.id and meta["parent"]["author"] == "bob"


def test_first_hop_needs_new_and_new_needs_an_empty_repo(
    tiny_base, file_hub, adapter_pkg, tmp_path, relay_env
):
    cfg = relay_config(tiny_base, tmp_path / "out")
    with pytest.raises(HubError) as err:
        relay_finetune(cfg, file_hub.url, "demo", **QUIET)
    assert "pass --new to start a fresh adapter" in one_line(err)
    file_hub.create_repo("demo")  # empty repo: still no silent fresh start
    with pytest.raises(HubError):
        relay_finetune(cfg, file_hub.url, "demo", **QUIET)
    push_adapter(file_hub, "demo", adapter_pkg)
    with pytest.raises(FedemError) as err:
        relay_finetune(cfg, file_hub.url, "demo", new=True, **QUIET)
    assert "already exists" in one_line(err) and "drop --new" in one_line(err)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_pull_validates_and_never_keeps_a_rejected_adapter(tiny_base, file_hub, adapter_pkg, tmp_path):
    good = push_adapter(file_hub, "demo", adapter_pkg)
    pulled = pull_adapter(file_hub, "demo", output=tmp_path / "ok", base=tiny_base)
    assert (
        pulled.revision == good and pulled.report.base_checked and (tmp_path / "ok" / "fedem.json").is_file()
    )

    # Someone publishes NaN weights straight through the hub API, bypassing push's validation.
    nan = copy_adapter(adapter_pkg, tmp_path / "nan")

    def poison(t):
        return {k: v * float("nan") if i == 0 else v for i, (k, v) in enumerate(sorted(t.items()))}

    rewrite_weights(nan, poison)
    meta = json.loads((nan / "fedem.json").read_text())
    meta["parent"] = {"repo": "demo", "revision": good.id}
    (nan / "fedem.json").write_text(json.dumps(meta))
    file_hub.publish("demo", nan, message="sneaky", parent=good.id, author="mallory")
    with pytest.raises(AdapterRejected) as err:
        pull_adapter(file_hub, "demo", output=tmp_path / "bad")
    assert "non-finite" in one_line(err)
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bad")] == []
    # and a relay hop refuses to train on it
    with pytest.raises(AdapterRejected):
        relay_finetune(
            relay_config(tiny_base, tmp_path / "h"), file_hub, "demo", cache_dir=tmp_path / "c", **QUIET
        )
    # the good revision is still there to pull by id
    assert pull_adapter(file_hub, "demo", good.id[:10], output=tmp_path / "again").revision == good


def test_pull_against_a_different_base(file_hub, adapter_pkg, tmp_path):
    from fedem.model import build_model, save_model

    push_adapter(file_hub, "demo", adapter_pkg)
    other = save_model(build_model("tiny", "mamba2", seed=3), tmp_path / "other")
    with pytest.raises(AdapterRejected) as err:
        pull_adapter(file_hub, "demo", output=tmp_path / "x", base=other)
    assert one_line(err).startswith("different base")


def test_push_keeps_the_parent_shape_and_base(file_hub, adapter_pkg, tmp_path):
    r1 = push_adapter(file_hub, "demo", adapter_pkg)
    # A fresh adapter may go on top of r1 only when asked (--parent), and is then recorded as its child.
    fresh = rewrite_weights(
        copy_adapter(adapter_pkg, tmp_path / "fresh"), lambda t: {k: v * 2 for k, v in t.items()}
    )
    r2 = push_adapter(file_hub, "demo", fresh, parent=r1.id[:9])
    assert r2.parent == r1.id
    assert json.loads(file_hub.read_file("demo", "fedem.json", r2.id))["parent"]["revision"] == r1.id
    assert json.loads((fresh / "fedem.json").read_text())["parent"] is None  # the local folder is untouched
    # A hop that claims another base than its parent's is refused.
    other = copy_adapter(adapter_pkg, tmp_path / "other")
    meta = json.loads((other / "fedem.json").read_text())
    meta["base"]["sha256"] = "0" * 64
    meta["parent"] = {"repo": "demo", "revision": r2.id}
    (other / "fedem.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterRejected) as err:
        push_adapter(file_hub, "demo", other)
    assert one_line(err).startswith("different base")
    # A folder trained from r1 cannot be pushed with --parent r2.
    meta["base"] = json.loads((adapter_pkg / "fedem.json").read_text())["base"]
    meta["parent"] = {"repo": "demo", "revision": r1.id}
    (other / "fedem.json").write_text(json.dumps(meta))
    with pytest.raises(FedemError) as err:
        push_adapter(file_hub, "demo", other, parent=r2.id)
    assert "push it without --parent" in one_line(err)


def test_one_hop_on_hf(tiny_base, make_hf_hub, adapter_pkg, tmp_path, relay_env):
    alice, bob = make_hf_hub("hf_alice"), make_hf_hub("hf_bob")
    r1 = push_adapter(alice, "demo", adapter_pkg)
    hop = relay_finetune(relay_config(tiny_base, tmp_path / "h", contributor="bob"), bob, "demo", **QUIET)
    assert hop.parent == r1 and hop.report.parent_revision == r1.id
    r2 = push_adapter(bob, "demo", hop.adapter_dir)
    chain = lineage(alice, "demo")
    assert [(e.revision.id, e.revision.parent, e.revision.author, e.contributor) for e in chain] == [
        (r2.id, r1.id, "bob", "bob"),
        (r1.id, None, "alice", "alice"),
    ]
    assert chain[0].bpb_before == pytest.approx(chain[1].bpb_after, abs=1e-4)


def test_a_tampered_cache_is_caught_on_the_next_hop(tiny_base, file_hub, adapter_pkg, tmp_path, relay_env):
    r1 = push_adapter(file_hub, "demo", adapter_pkg)
    cache = tmp_path / "cache"
    relay_finetune(relay_config(tiny_base, tmp_path / "a"), file_hub, "demo", cache_dir=cache, **QUIET)
    (cached,) = cache.rglob(r1.id)
    rewrite_weights(cached, lambda t: {k: v + 1 for k, v in t.items()}, reseal=False)
    with pytest.raises(AdapterRejected) as err:
        relay_finetune(relay_config(tiny_base, tmp_path / "b"), file_hub, "demo", cache_dir=cache, **QUIET)
    assert "does not match fedem.json weights_sha256" in one_line(err)


class _LyingHub(FileHub):
    """A hub whose revision ids were tampered with past the backend's own checks (defence in depth)."""

    def __init__(self, root, fake_id: str) -> None:
        super().__init__(root)
        self.fake_id = fake_id

    def revisions(self, repo):
        return [dataclasses.replace(r, id=self.fake_id) for r in super().revisions(repo)]


@pytest.mark.parametrize("fake_id", ["../../../../victim", "/tmp/victim", "ab" * 32 + "/../../../../victim"])
def test_relay_never_touches_paths_outside_its_cache(file_hub, adapter_pkg, tmp_path, fake_id):
    import hashlib

    from fedem.adapter.policy import DEFAULT_POLICY
    from fedem.relay import _cached_pull

    push_adapter(file_hub, "demo", adapter_pkg)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("precious")
    hub = _LyingHub(file_hub.root, fake_id.replace("/tmp/victim", str(victim)))
    cache = tmp_path / "cache"
    # the cache folder of this adapter exists after any earlier pull, so '..' would resolve through it
    (cache / "adapters" / hashlib.sha256(hub.url.encode()).hexdigest()[:16] / "demo").mkdir(parents=True)
    rev = hub.resolve("demo", None)
    with pytest.raises(HubError) as err:
        _cached_pull(hub, "demo", rev, None, DEFAULT_POLICY, cache)
    assert "revision id" in one_line(err)
    with pytest.raises(HubError):
        pull_adapter(hub, "demo", output=tmp_path / "out")
    assert (victim / "thesis.txt").read_text() == "precious"
    assert not (tmp_path / "out").exists()


def test_cache_folder_resolving_elsewhere_is_refused(file_hub, adapter_pkg, tmp_path):
    """Even with a valid id, the cache path is checked after resolving links, before any rmtree."""
    import hashlib

    from fedem.adapter.policy import DEFAULT_POLICY
    from fedem.relay import _cached_pull

    rev = push_adapter(file_hub, "demo", adapter_pkg)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / rev.id).mkdir(parents=True)
    (elsewhere / rev.id / "thesis.txt").write_text("precious")
    key = hashlib.sha256(file_hub.url.encode()).hexdigest()[:16]
    (tmp_path / "cache" / "adapters" / key).mkdir(parents=True)
    (tmp_path / "cache" / "adapters" / key / "demo").symlink_to(elsewhere)
    with pytest.raises(HubError) as err:
        _cached_pull(file_hub, "demo", rev, None, DEFAULT_POLICY, tmp_path / "cache")
    assert "outside the cache" in one_line(err)
    assert (elsewhere / rev.id / "thesis.txt").read_text() == "precious"


def test_pull_applies_the_policy_caps_before_downloading(file_hub, adapter_pkg, tmp_path):
    from fedem.adapter.policy import AdapterPolicy

    push_adapter(file_hub, "demo", adapter_pkg)
    files = len(list(adapter_pkg.iterdir()))
    with pytest.raises(HubError) as err:  # a HubError from the hub, not the validator's AdapterRejected
        pull_adapter(file_hub, "demo", output=tmp_path / "out", policy=AdapterPolicy(max_files=files - 1))
    assert "over the cap" in one_line(err)
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out*")) == []


DEEP_JSON = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


WRONG_TYPES = json.dumps(
    {
        "contributor": {"x": 1},
        "metrics": {"steps": "many", "tokens": 1.5, "bpb_before": "a", "bpb_after": None},
    }
).encode()


@pytest.mark.parametrize(
    "record", [DEEP_JSON, b"[1, 2]", b"\xff", WRONG_TYPES], ids=["deep", "list", "not-utf8", "wrong-types"]
)
def test_hostile_records_on_the_hub_never_crash_lineage_or_push(file_hub, adapter_pkg, tmp_path, record):
    """Someone publishes unparseable fedem.json / adapter_config.json straight through the hub API."""
    hostile = copy_adapter(adapter_pkg, tmp_path / "hostile")
    for name in ("fedem.json", "adapter_config.json"):
        (hostile / name).write_bytes(record)
    file_hub.create_repo("demo")
    r1 = file_hub.publish("demo", hostile, message="m", parent=None, author="mallory")
    (entry,) = lineage(file_hub, "demo")
    assert entry.revision == r1 and entry.contributor is None and entry.steps is None
    assert entry.bpb_before is None and entry.bpb_delta is None
    assert "?" in format_lineage([entry])
    # A fresh adapter pushed on top (--parent) meets the hostile parent record: no traceback. An
    # unreadable record vouches for nothing (the push goes on); a readable one that names no
    # base is a different base.
    if record == WRONG_TYPES:
        with pytest.raises(AdapterRejected) as err:
            push_adapter(file_hub, "demo", adapter_pkg, parent=r1.id)
        assert one_line(err).startswith("different base")
    else:
        assert push_adapter(file_hub, "demo", adapter_pkg, parent=r1.id).parent == r1.id
