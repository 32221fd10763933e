"""Reconciling against a real git remote: one commit per run, none when idle, CAS retries,
bad files left alone, and a run killed mid-push leaves the remote old or new, never half."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from fedem.clock import ManualClock, format_time
from fedem.registry.git import Git, redact
from fedem.registry.model import dump_adapter
from fedem.registry.ops import reconcile_remote
from fedem.registry.store import Decision, GitStore

from ._helpers import T0, FakeHub, git, make_adapter, remote_file, remote_log, rev

HI = "registry/adapters/seshu-hi.yaml"


def test_hop_commit_then_nothing(make_remote, tmp_path):
    remote = make_remote([make_adapter(holder="alice")])
    hub = FakeHub({"seshu-hi": [rev("seshu-hi", "r1", "alice", T0 + timedelta(minutes=30))]})
    clock = ManualClock(T0 + timedelta(hours=1))
    before = remote_log(remote)
    report = reconcile_remote(tmp_path / "cache.git", str(remote), hub=hub, clock=clock)
    assert report.commit and report.errors == ()
    log = remote_log(remote)
    assert len(log) == len(before) + 1 and log[0].split() == [report.commit, before[0].split()[0]]
    msg = git(remote, "log", "-1", "--format=%B", "registry")
    assert msg.startswith("reconcile: 1 event") and "hop: seshu-hi by alice, revision r1" in msg
    assert "holder: null" in remote_file(remote, HI) and "revision: r1" in remote_file(remote, HI)
    # Same inputs, later: nothing to do, no commit.
    clock.advance(hours=5)
    again = reconcile_remote(tmp_path / "cache.git", str(remote), hub=hub, clock=clock)
    assert again.commit is None and again.events == () and remote_log(remote) == log


def test_expiry_on_simulated_clock_and_no_second_commit(make_remote, tmp_path):
    remote = make_remote(
        [make_adapter(holder="alice"), make_adapter("seshu-te", holder="bob", since=T0 + timedelta(hours=1))]
    )
    clock = ManualClock(T0 + timedelta(hours=2))
    assert reconcile_remote(tmp_path / "c", str(remote), clock=clock).commit is None
    clock.advance(hours=1)  # alice's lock: exactly 3 h
    report = reconcile_remote(tmp_path / "c", str(remote), clock=clock)
    assert [(e.kind, e.adapter) for e in report.events] == [("expired", "seshu-hi")]
    n = len(remote_log(remote))
    assert reconcile_remote(tmp_path / "c", str(remote), clock=clock).commit is None
    assert len(remote_log(remote)) == n
    # A cron that skipped hours catches up from the timestamps.
    clock.advance(hours=7)
    report = reconcile_remote(tmp_path / "c", str(remote), clock=clock)
    assert [(e.kind, e.adapter, e.at) for e in report.events] == [
        ("expired", "seshu-te", format_time(T0 + timedelta(hours=4)))
    ]


def test_one_bad_file_never_stops_the_others(make_remote, tmp_path):
    remote = make_remote(
        [make_adapter(holder="alice")],
        files={
            "registry/adapters/broken.yaml": "name: broken\nspec: [oops\n",
            "registry/adapters/seshu-te.yaml": dump_adapter(make_adapter("seshu-ta")),
            "registry/adapters/Bad Name.yaml": "x: 1\n",
        },
    )
    report = reconcile_remote(tmp_path / "c", str(remote), clock=ManualClock(T0 + timedelta(hours=4)))
    assert [e.adapter for e in report.events] == ["seshu-hi"] and report.commit
    joined = "\n".join(report.errors)
    assert "registry/adapters/broken.yaml: invalid YAML" in joined
    assert "registry/adapters/seshu-te.yaml: name: expected 'seshu-te'" in joined
    assert "'registry/adapters/Bad Name.yaml': not an adapter file" in joined
    # The bad files are left exactly as they were.
    assert remote_file(remote, "registry/adapters/broken.yaml") == "name: broken\nspec: [oops"


def test_lost_race_decides_again_on_fresh_state(make_remote, tmp_path):
    remote = make_remote([make_adapter(holder="alice")])
    clock = ManualClock(T0 + timedelta(hours=4))
    calls = []

    def decide(snap):
        calls.append(snap.commit)
        if len(calls) == 1:  # somebody else moves the branch between our fetch and our push
            rival = GitStore(tmp_path / "rival.git", str(remote), clock=clock)
            reconcile_remote(rival.git.repo, str(remote), clock=clock)
        a = snap.adapters["seshu-ta"]
        data = (snap.raw[a.path].decode() + "# touched\n").encode()
        return Decision({a.path: data}, "touch\n")

    store = GitStore(tmp_path / "me.git", str(remote), clock=clock, sleep=lambda s: None)
    out = store.transact(decide)
    assert out.attempts == 2 and calls[0] != calls[1]
    log = remote_log(remote)
    assert all(len(line.split()) <= 2 for line in log), "history is linear"
    assert "holder: null" in remote_file(remote, HI)  # the rival's change survived: no force push


def test_concurrent_reconcilers_make_one_commit(make_remote, tmp_path):
    remote = make_remote([make_adapter(holder="alice"), make_adapter("seshu-te", holder="bob")])
    before = len(remote_log(remote))
    clock = ManualClock(T0 + timedelta(hours=5))
    barrier = threading.Barrier(4)
    reports = []

    def run(i):
        barrier.wait()
        reports.append(reconcile_remote(tmp_path / f"c{i}", str(remote), clock=clock))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(remote_log(remote)) == before + 1
    # Runs that decide on the same state at the same clock build the same commit, byte for byte;
    # a racer that pushes it after the winner finds the remote already there (git: up to date).
    # So one or more may report it, but never two different commits, and exactly one says its own
    # push made it (the others see "up to date", or fresh state with nothing left to change).
    assert {r.commit for r in reports} - {None} == {git(remote, "rev-parse", "registry")}
    assert sum(r.pushed for r in reports) == 1
    assert all(not r.pushed for r in reports if r.commit is None)


def _hook(remote, name, marker):
    hook = remote / "hooks" / name
    hook.write_text(f"#!/bin/sh\ncat >/dev/null\ntouch '{marker}'\nsleep 60\n")
    hook.chmod(0o755)
    return hook


@pytest.mark.parametrize("hook_name, expect", [("pre-receive", "old"), ("post-receive", "new")])
def test_killed_mid_push_leaves_old_or_new(make_remote, tmp_path, hook_name, expect):
    remote = make_remote([make_adapter(holder="alice")])
    old = git(remote, "rev-parse", "registry")
    marker = tmp_path / "in-hook"
    hook = _hook(remote, hook_name, marker)
    now = format_time(T0 + timedelta(hours=4))
    cmd = [
        sys.executable,
        "-m",
        "fedem",
        "registry",
        "reconcile",
        "--repo",
        str(tmp_path / "c"),
        "--remote",
        str(remote),
        "--now",
        now,
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    hook.unlink()
    head = git(remote, "rev-parse", "registry")
    git(remote, "fsck", "--no-progress")
    if expect == "old":
        assert head == old
    else:
        assert git(remote, "rev-parse", "registry~1") == old and "holder: null" in remote_file(remote, HI)
    # The next run finishes the job exactly once.
    report = reconcile_remote(tmp_path / "c", str(remote), clock=ManualClock(T0 + timedelta(hours=4)))
    assert (report.commit is not None) == (expect == "old")
    assert len(remote_log(remote)) == len(git(remote, "rev-list", old).splitlines()) + 1
    assert "holder: null" in remote_file(remote, HI)


SECRET = "ghs_s3cr3t@with-at"
TOKEN_URL = f"https://x-access-token:{SECRET}@github.invalid/fedem/fedem.git"


def test_redact_hides_all_user_info():
    assert redact(f"fatal: unable to access '{TOKEN_URL}/': 403") == (
        "fatal: unable to access 'https://***@github.invalid/fedem/fedem.git/': 403"
    )
    assert (
        redact("https://github.com/fedem/fedem.git and hf://org")
        == "https://github.com/fedem/fedem.git and hf://org"
    )


def test_remote_credentials_never_reach_a_message(make_remote, tmp_path, monkeypatch):
    """The workflows' remote URL holds the write token; no error or printed step may show it."""
    from fedem.errors import FedemError
    from fedem.registry.contribute import prepare_request
    from fedem.registry.ops import init_registry

    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(empty))
    remote = make_remote([make_adapter(holder="alice")])
    # git rewrites the token URL to a local remote, so every code path runs for real, offline.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{empty}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", TOKEN_URL)
    messages = []

    def capture(fn, *args, **kw):
        with pytest.raises(FedemError) as err:
            fn(*args, **kw)
        messages.append(str(err.value))

    capture(GitStore(tmp_path / "c1", TOKEN_URL).fetch)  # the remote has no registry branch
    capture(prepare_request, tmp_path / "c1", "seshu-hi", "alice", remote=TOKEN_URL, open_pr=False)
    capture(Git(tmp_path / "c1").fetch, TOKEN_URL + ".missing", "registry", "refs/x")  # git fails
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{remote}.insteadOf")  # now one with a registry
    src = tmp_path / "src-remote.git"  # make_remote's source repo
    capture(init_registry, src, TOKEN_URL)
    store = GitStore(tmp_path / "c2", TOKEN_URL)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho 'refused push to {TOKEN_URL}' >&2\nexit 1\n")
    hook.chmod(0o755)
    capture(store.transact, lambda snap: Decision({"registry/x.txt": b"x"}, "x\n"))
    capture(prepare_request, tmp_path / "c2", "seshu-ta", "alice", remote=TOKEN_URL, open_pr=False)
    steps = prepare_request(tmp_path / "c2", "seshu-ta", "alice", remote=TOKEN_URL, push=False, open_pr=False)
    messages.append(steps.steps)
    assert len(messages) == 7
    for msg in messages:
        assert "s3cr3t" not in msg and "with-at" not in msg, msg
    assert all("https://***@github.invalid" in m for m in messages), messages


def test_a_push_of_a_commit_the_remote_already_has_is_not_reported_as_ours(make_remote, tmp_path):
    from fedem.registry.store import GitStore

    remote = make_remote([make_adapter(holder="alice")])
    first = reconcile_remote(tmp_path / "a", str(remote), clock=ManualClock(T0 + timedelta(hours=5)))
    head = git(remote, "rev-parse", "registry")
    assert first.pushed and first.commit == head
    # A racer that built the identical commit pushes it after the winner: git says "up to date".
    store = GitStore(tmp_path / "b", str(remote))
    store.snapshot()  # fetches the objects
    assert store.git.push(str(remote), head, "registry") is False


def test_parse_cache_gives_the_same_snapshot_and_reads_changed_files_only(make_remote, tmp_path):
    from fedem.registry.store import ParseCache, snapshot_from_commit

    remote = make_remote([make_adapter(holder="alice")], files={"registry/adapters/bad.yaml": "name: ["})
    cache = ParseCache(max_entries=2)
    plain = GitStore(tmp_path / "plain.git", str(remote))
    cached = GitStore(tmp_path / "cached.git", str(remote), cache=cache)
    first = cached.snapshot()
    again = cached.snapshot()
    want = plain.snapshot()
    for snap in (first, again):
        assert (snap.adapters, snap.raw, snap.errors, snap.policy) == (
            want.adapters, want.raw, want.errors, want.policy,
        )  # fmt: skip
    assert len(cache._items) == 2, "bounded: the oldest entry went out; bad files are never kept"
    # After a change, only the changed blob is new; the rest comes from the cache as the same objects.
    clock = ManualClock(T0 + timedelta(hours=5))
    reconcile_remote(tmp_path / "r.git", str(remote), clock=clock, cache=cache)
    head = cached.fetch()
    after = snapshot_from_commit(cached.git, head, cache)
    assert after.adapters == snapshot_from_commit(plain.git, plain.fetch()).adapters
    assert after.adapters["seshu-hi"].lock.state == "free"
