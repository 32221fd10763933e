"""Publishing and pulling checkpoints on both backends: the root, a child (compare-and-swap), refusals."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedem.cli import main
from fedem.errors import ConflictError, FedemError, HubError, ModelError
from fedem.hub.filehub import FileHub
from fedem.model import weights_sha256
from fedem.names import is_revision_id
from fedem.publish import checkpoint as ckpt_mod
from fedem.publish import publish_checkpoint, publish_root, pull_checkpoint


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _child(tmp_path: Path, model_dir: Path, parent_id: str, name: str, **record) -> Path:
    """A checkpoint folder that continues ``parent_id`` (the same weights, a new record)."""
    folder = tmp_path / name
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "fedem.json").read_text())
    meta.update({"parent": {"repo": "seshu", "revision": parent_id}, "relation": "finetune", **record})
    (folder / "fedem.json").write_text(json.dumps(meta))
    (folder / "README.md").write_text(f"# {name}\n")
    return folder


def test_the_root_publishes_once_and_pulls_back_by_tag_id_and_head(hub, tiny_base, clock, tmp_path):
    model_dir = tiny_base / "model"
    before = _listing(model_dir)
    published = publish_root(hub, tiny_base, author="maintainer", clock=clock)
    rev = published.revision
    assert published.tag == "seshu-20261201" and rev.parent is None and is_revision_id(rev.id)
    assert rev.tags == ("seshu-20261201",)
    assert _listing(model_dir) == before, "the pretrain output is not modified"
    assert sorted(p.name for p in tiny_base.iterdir()) == sorted(
        p.name for p in tiny_base.iterdir() if not p.name.startswith(".")
    )
    pulled = [
        pull_checkpoint(hub, "seshu", r, dest=tmp_path / f"pull-{i}")
        for i, r in enumerate((published.tag, None, rev.id))
    ]
    assert {p.revision.id for p in pulled} == {rev.id} and pulled[0].tag == "seshu-20261201"
    files = _listing(pulled[0].folder)
    assert files == _listing(pulled[2].folder)
    assert (
        files["fedem.json"] == before["fedem.json"]
        and files["model.safetensors"] == before["model.safetensors"]
    )
    assert pulled[0].record.weights_sha256 == weights_sha256(model_dir) and pulled[0].record.parent is None
    card = files["README.md"].decode()
    assert "library_name: transformers" in card and "base_model" not in card and "- te" in card
    with pytest.raises(FedemError) as err:
        publish_root(hub, tiny_base, clock=clock)
    assert "already has checkpoints" in str(err.value) and "\n" not in str(err.value)
    assert hub.revisions("seshu") == [pull_checkpoint(hub, "seshu").revision]


def test_a_child_publishes_onto_its_recorded_parent_and_a_stale_one_writes_nothing(
    hub, tiny_base, clock, tmp_path
):
    root = publish_root(hub, tiny_base, clock=clock).revision
    a = publish_checkpoint(
        hub, "seshu", _child(tmp_path, tiny_base / "model", root.id, "a"), message="cpt a", clock=clock
    )
    assert a.revision.parent == root.id and a.tag == "seshu-20261201-2"
    assert pull_checkpoint(hub, "seshu", a.tag).record.relation == "finetune"
    stale = _child(tmp_path, tiny_base / "model", root.id, "b", created="2026-12-02T00:00:00Z")
    with pytest.raises(ConflictError):
        publish_checkpoint(hub, "seshu", stale, message="cpt b", clock=clock)
    assert [r.id for r in hub.revisions("seshu")] == [a.revision.id, root.id]
    other = _child(
        tmp_path,
        tiny_base / "model",
        a.revision.id,
        "c",
        parent={"repo": "elsewhere", "revision": a.revision.id},
    )
    with pytest.raises(ModelError, match="continues checkpoint repo 'elsewhere'"):
        publish_checkpoint(hub, "seshu", other, message="m", clock=clock)


def _raw(hub, folder: Path, parent=None):
    """Publish ``folder`` bypassing fedem's checks, as any writer of the hub could."""
    hub.create_repo("seshu")
    return hub.publish("seshu", folder, message="raw", parent=parent, author="mallory")


def _tampered(tmp_path: Path, model_dir: Path, how: str) -> Path:
    folder = tmp_path / how
    shutil.copytree(model_dir, folder)
    if how == "weights":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF  # a flipped bit in the last tensor: still loadable, not the recorded weights
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif how == "extra-file":
        (folder / "extra.json").write_text("{}")
    elif how == "parent":
        meta = json.loads((folder / "fedem.json").read_text())
        meta.update({"parent": {"repo": "seshu", "revision": "e" * 40}, "relation": "merge"})
        (folder / "fedem.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    "how, needle",
    [
        ("weights", "differs from the fedem.json record"),
        ("extra-file", "'extra.json' is not a checkpoint file"),
        ("parent", "records parent eeeeeeeeeeee but the hub's parent is (none)"),
    ],
)
def test_pull_refuses_what_is_not_a_checkpoint_and_leaves_nothing(hub, tiny_base, tmp_path, how, needle):
    _raw(hub, _tampered(tmp_path, tiny_base / "model", how))
    dest = tmp_path / "out" / "pulled"
    with pytest.raises(ModelError) as err:
        pull_checkpoint(hub, "seshu", dest=dest)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []


def test_pull_refuses_a_revision_over_the_caps_before_fetching_it(hub, tiny_base, tmp_path, monkeypatch):
    publish_root(hub, tiny_base)
    monkeypatch.setattr(ckpt_mod, "CHECKPOINT_MAX_BYTES", 1000)
    with pytest.raises(HubError, match="over the cap of 1,000"):
        pull_checkpoint(hub, "seshu", dest=tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()
    monkeypatch.setattr(ckpt_mod, "CHECKPOINT_MAX_FILES", 3)
    monkeypatch.setattr(ckpt_mod, "CHECKPOINT_MAX_BYTES", 1 << 30)
    with pytest.raises(HubError, match="files, over the cap of 3"):
        pull_checkpoint(hub, "seshu", dest=tmp_path / "pulled")


def test_fedem_publish_prints_the_revision_and_the_tag(tiny_base, tmp_path):
    url = f"file://{tmp_path / 'hub'}"
    res = CliRunner().invoke(main, ["publish", str(tiny_base), "--hub", url, "--repo", "seshu"])
    assert res.exit_code == 0, res.output
    head = FileHub(tmp_path / "hub").head("seshu")
    assert f"revision {head.id}" in res.output.splitlines()
    (tag,) = head.tags
    assert re.fullmatch(r"seshu-\d{8}", tag) and f"tag {tag}" in res.output.splitlines()


@pytest.mark.parametrize("target", ["missing", "not-a-model"])
def test_fedem_publish_bad_input_is_one_line_and_writes_nothing(tmp_path, target):
    folder = tmp_path / target
    if target == "not-a-model":
        folder.mkdir()
        (folder / "notes.txt").write_text("hello")
    res = CliRunner().invoke(main, ["publish", str(folder), "--hub", f"file://{tmp_path / 'hub'}"])
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert line.startswith("error: ") and str(folder) in line
    assert not (tmp_path / "hub").exists()
