"""The hub contract (fedem.hub.base), run against every backend: file:// and hf:// (fake server)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest

from fedem.errors import ConflictError, HubError
from fedem.io import sha256_tree

from ._util import make_folder, read_folder

V1 = {
    "adapter_model.safetensors": b"\x00weights-v1" * 100,
    "adapter_config.json": b'{"r": 8}',
    "README.md": b"v1",
}
V2 = {"adapter_model.safetensors": b"\x01weights-v2" * 100, "adapter_config.json": b'{"r": 8}'}
V3 = {
    "adapter_model.safetensors": b"\x02weights-v3",
    "sub/extra.yaml": b"a: 1\n",
    "adapter_config.json": b"{}",
}


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    return {name: make_folder(tmp_path / name, files) for name, files in (("v1", V1), ("v2", V2), ("v3", V3))}


def test_create_and_list_repos(hub):
    hub.create_repo("alpha")
    hub.create_repo("beta")
    hub.create_repo("alpha")  # exist_ok by default
    assert hub.list_repos() == ["alpha", "beta"]
    with pytest.raises(HubError) as err:
        hub.create_repo("alpha", exist_ok=False)
    assert "alpha" in one_line(err)


def test_empty_repo_has_no_head(hub):
    hub.create_repo("empty")
    assert hub.revisions("empty") == []
    assert hub.head("empty") is None
    with pytest.raises(HubError):
        hub.resolve("empty", None)


def test_publish_chain(hub, folders):
    hub.create_repo("ad")
    r1 = hub.publish("ad", folders["v1"], message="first step", parent=None, author="alice")
    r2 = hub.publish("ad", folders["v2"], message="second step\nwith details", parent=r1.id, author="alice")
    revs = hub.revisions("ad")
    assert [r.id for r in revs] == [r2.id, r1.id]
    assert revs[0] == r2 and revs[1] == r1
    assert (r1.parent, r2.parent) == (None, r1.id)
    assert {r.author for r in revs} == {"alice"}
    assert r1.message == "first step" and r2.message.startswith("second step")
    for r in revs:
        assert isinstance(r.time, datetime) and r.time.utcoffset() is not None
    assert r2.time >= r1.time
    assert hub.head("ad") == r2


def test_stale_parent_conflicts_and_writes_nothing(hub, folders):
    hub.create_repo("ad")
    with pytest.raises(ConflictError):
        hub.publish("ad", folders["v1"], message="m", parent="f" * 40, author="alice")
    r1 = hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    r2 = hub.publish("ad", folders["v2"], message="m", parent=r1.id, author="alice")
    before = hub.revisions("ad")
    for stale in (None, r1.id):
        with pytest.raises(ConflictError) as err:
            hub.publish("ad", folders["v3"], message="late", parent=stale, author="alice")
        assert "stale parent" in one_line(err)
    assert hub.revisions("ad") == before
    assert hub.head("ad").id == r2.id


def test_download_by_id_tag_and_head(hub, folders, tmp_path):
    hub.create_repo("ad")
    r1 = hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    r2 = hub.publish("ad", folders["v3"], message="m", parent=r1.id, author="alice")
    assert hub.download("ad", r1.id, tmp_path / "d1") == tmp_path / "d1"
    assert read_folder(tmp_path / "d1") == V1
    hub.download("ad", None, tmp_path / "head")
    assert read_folder(tmp_path / "head") == V3  # README.md of v1 was deleted, not inherited
    (tmp_path / "empty").mkdir()
    hub.download("ad", r2.id[:10], tmp_path / "empty")  # an empty dest and an id prefix are fine
    assert read_folder(tmp_path / "empty") == V3
    with pytest.raises(HubError):
        hub.download("ad", None, tmp_path / "d1")  # never overwrites a non-empty folder
    assert read_folder(tmp_path / "d1") == V1


def test_read_file(hub, folders):
    hub.create_repo("ad")
    r1 = hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    hub.publish("ad", folders["v3"], message="m", parent=r1.id, author="alice")
    assert hub.read_file("ad", "sub/extra.yaml") == V3["sub/extra.yaml"]
    assert hub.read_file("ad", "README.md", r1.id) == b"v1"
    with pytest.raises(HubError) as err:
        hub.read_file("ad", "README.md")  # deleted at head
    assert "README.md" in one_line(err)
    for bad in ("../secret.json", "/etc/passwd.json", "model.bin"):
        with pytest.raises(HubError):
            hub.read_file("ad", bad)
    # "small" is enforced: a reader never loads an oversized file into memory
    size = len(V3["sub/extra.yaml"])
    assert hub.read_file("ad", "sub/extra.yaml", max_bytes=size) == V3["sub/extra.yaml"]
    with pytest.raises(HubError) as err:
        hub.read_file("ad", "sub/extra.yaml", max_bytes=size - 1)
    assert "cap for small files" in one_line(err)


def test_tags_are_immutable(hub, folders, tmp_path):
    hub.create_repo("ad")
    r1 = hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    r2 = hub.publish("ad", folders["v2"], message="m", parent=r1.id, author="alice")
    hub.tag("ad", r1.id, "accepted-1")
    hub.tag("ad", r1.id, "accepted-1")  # same target: a no-op
    with pytest.raises(HubError) as err:
        hub.tag("ad", r2.id, "accepted-1")
    assert "immutable" in one_line(err)
    assert hub.revisions("ad")[1].tags == ("accepted-1",)
    assert hub.resolve("ad", "accepted-1").id == r1.id
    hub.download("ad", "accepted-1", tmp_path / "t")
    assert read_folder(tmp_path / "t") == V1
    with pytest.raises(HubError):
        hub.tag("ad", r2.id, "bad/tag")


def test_unknown_repo_and_revision(hub, folders, tmp_path):
    with pytest.raises(HubError) as err:
        hub.revisions("nope")
    assert "nope" in one_line(err)
    hub.create_repo("ad")
    hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    for call in (
        lambda: hub.download("ad", "0" * 40, tmp_path / "x"),
        lambda: hub.read_file("ad", "README.md", "no-such-tag"),
        lambda: hub.tag("ad", "1" * 40, "t"),
    ):
        with pytest.raises(HubError) as err:
            call()
        one_line(err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b/c", "", ".hidden", "a..b", "sp ace", "x" * 200])
def test_invalid_repo_names(hub, name):
    with pytest.raises(HubError) as err:
        hub.create_repo(name)
    assert "invalid repo name" in one_line(err)


def test_refuses_pickles_and_empty_folders(hub, folders, tmp_path):
    hub.create_repo("ad")
    (folders["v1"] / "training_args.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(HubError) as err:
        hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    assert "training_args.bin" in one_line(err)
    (tmp_path / "void").mkdir()
    with pytest.raises(HubError):
        hub.publish("ad", tmp_path / "void", message="m", parent=None, author="alice")
    assert hub.revisions("ad") == []


def test_identical_to_parent_is_refused(hub, folders):
    hub.create_repo("ad")
    r1 = hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    with pytest.raises(HubError) as err:
        hub.publish("ad", folders["v1"], message="again", parent=r1.id, author="alice")
    assert "identical" in one_line(err)
    assert [r.id for r in hub.revisions("ad")] == [r1.id]


@pytest.mark.parametrize("start", ["empty", "after-first"])
@pytest.mark.parametrize("same_content", [False, True], ids=["different", "identical"])
def test_push_race_exactly_one_wins(hub, folders, tmp_path, start, same_content):
    hub.create_repo("ad")
    parent = None
    if start == "after-first":
        parent = hub.publish("ad", folders["v1"], message="base", parent=None, author="alice").id
    racers = [folders["v2"], make_folder(tmp_path / "other", V2 if same_content else V3)]
    hashes = [sha256_tree(f) for f in racers]
    barrier = threading.Barrier(len(racers))
    results: list[object] = [None] * len(racers)

    def push(i: int) -> None:
        barrier.wait()
        try:
            results[i] = hub.publish("ad", racers[i], message=f"racer {i}", parent=parent, author="alice")
        except ConflictError as err:
            results[i] = err

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(racers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert hub.head("ad").id == winners[0].id and winners[0].parent == parent
    assert [sha256_tree(f) for f in racers] == hashes  # the loser's work is intact locally


def test_download_caps_are_checked_before_fetching(hub, folders, tmp_path, request):
    """A revision with too many or too large files is refused before any file is fetched."""
    hub.create_repo("ad")
    hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    total = sum(len(b) for b in V1.values())
    fake = request.getfixturevalue("hf_env").hub if hub.url.startswith("hf://") else None
    if fake is not None:
        fake.requests.clear()
    with pytest.raises(HubError) as err:
        hub.download("ad", None, tmp_path / "few", max_files=len(V1) - 1)
    assert f"over the cap of {len(V1) - 1}" in one_line(err)
    with pytest.raises(HubError) as err:
        hub.download("ad", None, tmp_path / "small", max_bytes=total - 1)
    assert f"{total:,} bytes" in one_line(err) and "'ad'" in one_line(err)
    assert not (tmp_path / "few").exists() and not (tmp_path / "small").exists()
    if fake is not None:
        assert not [p for _, p in fake.requests if "/resolve/" in p]  # nothing was fetched
    hub.download("ad", None, tmp_path / "exact", max_files=len(V1), max_bytes=total)
    assert read_folder(tmp_path / "exact") == V1


def test_download_caps_default_to_the_adapter_policy():
    import inspect

    from fedem.adapter.policy import DEFAULT_POLICY
    from fedem.hub.base import DOWNLOAD_MAX_BYTES, DOWNLOAD_MAX_FILES, Hub

    assert (DEFAULT_POLICY.max_files, DEFAULT_POLICY.max_bytes) == (DOWNLOAD_MAX_FILES, DOWNLOAD_MAX_BYTES)
    params = inspect.signature(Hub.download).parameters
    assert (
        params["max_files"].default == DOWNLOAD_MAX_FILES
        and params["max_bytes"].default == DOWNLOAD_MAX_BYTES
    )


def test_read_file_cap_is_checked_before_fetching(hub, folders, request):
    hub.create_repo("ad")
    hub.publish("ad", folders["v1"], message="m", parent=None, author="alice")
    fake = request.getfixturevalue("hf_env").hub if hub.url.startswith("hf://") else None
    if fake is not None:
        fake.requests.clear()
    with pytest.raises(HubError) as err:
        hub.read_file("ad", "adapter_model.safetensors", max_bytes=10)
    assert "cap for small files" in one_line(err)
    if fake is not None:
        assert not [p for _, p in fake.requests if "/resolve/" in p]
