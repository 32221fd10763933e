"""file:// only: crash safety, immutability, the lock, the injectable clock, layout and URLs."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fedem.clock import ManualClock
from fedem.errors import ConflictError, HubError
from fedem.hub import open_hub
from fedem.hub.filehub import FileHub
from fedem.hub.fsutil import file_system_now

from ._util import make_folder, read_folder

A = {"adapter_model.safetensors": b"A" * 4096, "adapter_config.json": b'{"r": 4}'}
B = {"adapter_model.safetensors": b"B" * 4096, "adapter_config.json": b'{"r": 4}', "notes.md": b"b"}

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fedem.hub.filehub import FileHub
    hub = FileHub(sys.argv[1])
    parent = sys.argv[3] if sys.argv[3] != "-" else None
    hub.publish("ad", Path(sys.argv[2]), message="doomed", parent=parent, author="killed")
    print("finished", flush=True)
    """
)


@pytest.fixture
def fhub(tmp_path: Path) -> FileHub:
    hub = FileHub(tmp_path / "hub")
    hub.init()
    hub.create_repo("ad")
    return hub


def kill_mid_publish(hub: FileHub, folder: Path, parent: str | None, point: str) -> None:
    """Publish from a child process, SIGKILL it when it pauses at ``point``."""
    env = {**os.environ, "FEDEM_TEST_KILL_POINT": point}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(hub.root), str(folder), parent or "-"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == f"paused:{point}", line
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=20)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point", ["copy", "head"])
def test_killed_publish_leaves_nothing_visible(fhub, tmp_path, point):
    r1 = fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    big = make_folder(tmp_path / "b", B)
    kill_mid_publish(fhub, big, r1.id, point)
    # "copy": killed with files half staged; "head": killed holding the lock, revision renamed in.
    assert fhub.revisions("ad") == [r1]
    assert fhub.head("ad") == r1
    # The lock died with its holder, and the next publish on the same parent succeeds.
    r2 = fhub.publish("ad", big, message="retry", parent=r1.id, author="alice")
    assert [r.id for r in fhub.revisions("ad")] == [r2.id, r1.id]
    fhub.download("ad", None, tmp_path / "out")
    assert read_folder(tmp_path / "out") == B


def test_stale_staging_is_swept(fhub, tmp_path):
    stale = fhub.root / "ad" / "revisions" / ".staging-1-dead"
    stale.mkdir()
    (stale / "x.json").write_text("{}")
    old = file_system_now(stale.parent) - 7 * 3600  # the file system's clock, not the process's
    os.utime(stale, (old, old))
    fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    assert not stale.exists()


def test_revisions_are_read_only_and_never_rewritten(fhub, tmp_path):
    a, b = make_folder(tmp_path / "a", A), make_folder(tmp_path / "b", B)
    r1 = fhub.publish("ad", a, message="m", parent=None, author="alice")
    rev_dir = fhub.root / "ad" / "revisions" / r1.id
    files = sorted(p for p in rev_dir.rglob("*") if p.is_file())
    assert files and all(not (p.stat().st_mode & 0o222) for p in files)
    assert not (rev_dir.stat().st_mode & 0o222)
    assert not ((fhub.root / "ad" / "revisions" / f"{r1.id}.json").stat().st_mode & 0o222)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    r2 = fhub.publish("ad", b, message="m", parent=r1.id, author="alice")
    r3 = fhub.publish("ad", a, message="m", parent=r2.id, author="alice")  # same bytes as r1, new parent
    assert len({r1.id, r2.id, r3.id}) == 3
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == before
    fhub.download("ad", r1.id, tmp_path / "d")
    assert read_folder(tmp_path / "d") == A
    assert all(os.access(p, os.W_OK) or os.geteuid() == 0 for p in (tmp_path / "d").iterdir())
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o200 for p in (tmp_path / "d").iterdir())


class _NaiveClock:
    def now(self) -> datetime:
        return datetime(2030, 1, 1)


def test_injected_clock_stamps_revisions(tmp_path):
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=timezone.utc))
    hub = FileHub(tmp_path / "hub", clock=clock)
    hub.create_repo("ad")
    r1 = hub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    clock.advance(hours=3)
    r2 = hub.publish("ad", make_folder(tmp_path / "b", B), message="m", parent=r1.id, author="bob")
    assert [r.time for r in hub.revisions("ad")] == [clock.now(), clock.now() - timedelta(hours=3)]
    assert (r1.author, r2.author) == ("alice", "bob")
    naive = FileHub(tmp_path / "hub", clock=_NaiveClock())
    with pytest.raises(HubError, match="naive"):
        naive.publish("ad", make_folder(tmp_path / "c", {"c.json": b"1"}), message="m", parent=r2.id)
    assert hub.head("ad") == r2


def test_default_author_comes_from_env(fhub, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDEM_AUTHOR", "carol")
    rev = fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None)
    assert rev.author == "carol"


def test_many_racers_one_winner(fhub, tmp_path):
    folders = [make_folder(tmp_path / f"f{i}", {"w.safetensors": bytes([i]) * 1000}) for i in range(6)]
    barrier = threading.Barrier(len(folders))
    outcomes: list[str] = []

    def push(folder: Path) -> None:
        barrier.wait()
        try:
            fhub.publish("ad", folder, message="race", parent=None, author="x")
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=push, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    assert len(fhub.revisions("ad")) == 1
    assert not list((fhub.root / "ad" / "revisions").glob(".staging-*"))


def test_org_prefixed_repos_and_listing(tmp_path):
    hub = FileHub(tmp_path / "hub")
    hub.create_repo("org/one")  # create_repo initializes the hub on first use
    hub.create_repo("org/two")
    hub.create_repo("solo")
    assert hub.list_repos() == ["org/one", "org/two", "solo"]
    with pytest.raises(HubError, match="clashes"):
        hub.create_repo("solo/inner")
    with pytest.raises(HubError, match="clashes"):
        hub.create_repo("org")


def test_missing_hub_and_init_rules(tmp_path):
    hub = FileHub(tmp_path / "nowhere")
    with pytest.raises(HubError, match="no hub at"):
        hub.list_repos()
    with pytest.raises(HubError, match="no hub at"):
        hub.revisions("ad")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(HubError, match="not empty"):
        FileHub(tmp_path / "busy").init()
    assert "file hub" in hub.init() and hub.init()  # idempotent
    assert hub.list_repos() == []


def test_open_hub_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_hub("file://./hub"), FileHub)
    assert open_hub("file://./hub").root == tmp_path / "hub"
    assert open_hub(str(tmp_path / "bare")).root == tmp_path / "bare"
    clock = ManualClock(datetime(2031, 5, 5, tzinfo=timezone.utc))
    assert open_hub(f"file://{tmp_path}/h", clock=clock)._clock is clock
    with pytest.raises(HubError, match="unknown scheme"):
        open_hub("ftp://example.org/x")


# -- a hostile co-writer of a shared hub directory ----------------------------------------------------
def _tamper_meta(hub: FileHub, rev_id: str, **changes) -> None:
    meta_path = hub.root / "ad" / "revisions" / f"{rev_id}.json"
    meta_path.chmod(0o644)
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


def _tamper_head(hub: FileHub, text: str) -> None:
    (hub.root / "ad" / "HEAD").write_text(text)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda hub, r1, r2: _tamper_meta(hub, r2.id, id="../../../../victim"), id="meta-id-traversal"
        ),
        pytest.param(lambda hub, r1, r2: _tamper_meta(hub, r2.id, id=r1.id), id="meta-id-not-its-name"),
        pytest.param(
            lambda hub, r1, r2: _tamper_meta(hub, r2.id, parent="../../victim"), id="parent-traversal"
        ),
        pytest.param(lambda hub, r1, r2: _tamper_meta(hub, r1.id, parent=r2.id), id="parent-cycle"),
        pytest.param(lambda hub, r1, r2: _tamper_meta(hub, r2.id, author=["x"]), id="author-not-text"),
        pytest.param(lambda hub, r1, r2: _tamper_meta(hub, r2.id, time="yesterday"), id="bad-time"),
        pytest.param(lambda hub, r1, r2: _tamper_head(hub, "../../../victim\n"), id="head-traversal"),
        pytest.param(lambda hub, r1, r2: _tamper_head(hub, r2.id.upper()), id="head-not-lower-hex"),
        pytest.param(
            lambda hub, r1, r2: (hub.root / "ad" / "tags" / "t").write_text("../../victim\n"),
            id="tag-traversal",
        ),
    ],
)
def test_tampered_ids_are_refused_one_line(fhub, tmp_path, tamper):
    r1 = fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    r2 = fhub.publish("ad", make_folder(tmp_path / "b", B), message="m", parent=r1.id, author="alice")
    tamper(fhub, r1, r2)
    for call in (
        lambda: fhub.revisions("ad"),
        lambda: fhub.resolve("ad", None),
        lambda: fhub.download("ad", None, tmp_path / "out"),
        lambda: fhub.read_file("ad", "adapter_config.json"),
    ):
        with pytest.raises(HubError) as err:
            call()
        text = str(err.value)
        assert "'ad'" in text and "\n" not in text
    assert not (tmp_path / "out").exists()


def test_revision_ids_stay_inside_the_repo(fhub, tmp_path):
    """The reviewer's probe: a meta id pointing outside the hub must never name a directory."""
    victim = tmp_path / "victim"
    make_folder(victim, {"adapter_config.json": b"{}"})
    r1 = fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    _tamper_meta(fhub, r1.id, id=os.path.relpath(victim, fhub.root / "ad" / "revisions"))
    with pytest.raises(HubError, match="not a revision id"):
        fhub.download("ad", None, tmp_path / "out")
    assert not (tmp_path / "out").exists() and (victim / "adapter_config.json").exists()


# -- links and special files inside a stored revision ----------------------------------------------
def _swap_in(hub: FileHub, rev_id: str, rel: str, make) -> None:
    rev_dir = hub.root / "ad" / "revisions" / rev_id
    target = rev_dir / rel
    target.parent.chmod(0o755)
    target.unlink()
    make(target)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.symlink_to("/dev/zero"), id="symlink-to-dev-zero"),
        pytest.param(lambda p: p.symlink_to(p.parent.parent.parent / "HEAD"), id="symlink-to-a-file"),
        pytest.param(lambda p: os.mkfifo(p), id="fifo"),
    ],
)
def test_read_file_and_download_refuse_links_and_special_files(fhub, tmp_path, make):
    r1 = fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    _swap_in(fhub, r1.id, "adapter_config.json", make)
    with pytest.raises(HubError) as err:
        fhub.read_file("ad", "adapter_config.json")
    assert "adapter_config.json" in str(err.value) and "not a regular file" in str(err.value)
    with pytest.raises(HubError) as err:
        fhub.download("ad", None, tmp_path / "out")
    assert "adapter_config.json" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_download_refuses_a_linked_revision_folder_and_stray_files(fhub, tmp_path):
    r1 = fhub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None, author="alice")
    rev_dir = fhub.root / "ad" / "revisions" / r1.id
    rev_dir.chmod(0o755)
    (rev_dir / "sub").mkdir()
    (rev_dir / "sub" / "x.json").symlink_to(rev_dir / "adapter_config.json")
    with pytest.raises(HubError, match="sub/x.json"):
        fhub.download("ad", None, tmp_path / "out")
    (rev_dir / "sub" / "x.json").unlink()
    (rev_dir / "sub" / "x.bin").write_bytes(b"pickle")
    with pytest.raises(HubError, match="sub/x.bin"):
        fhub.download("ad", None, tmp_path / "out")
    (rev_dir / "sub" / "x.bin").unlink()
    (rev_dir / "sub").rmdir()
    victim = make_folder(tmp_path / "victim", {"adapter_config.json": b"{}"})
    os.rename(rev_dir, tmp_path / "moved")
    rev_dir.symlink_to(victim)
    with pytest.raises(HubError, match="not a directory"):
        fhub.download("ad", None, tmp_path / "out")
    with pytest.raises(HubError, match="not a directory"):
        fhub.read_file("ad", "adapter_config.json")
    assert not (tmp_path / "out").exists()
