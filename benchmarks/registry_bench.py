"""Benchmark: reconciling a 10,000-adapter registry.

Rows: the pure core alone (goal <= 1 s), and a full reconciler run against a local bare git
remote (fetch into a fresh cache as the workflow does, parse every file, reconcile, one
commit, push; goal <= 5 s). 2,000 locks are held: 1,000 end in a hop, 500 expire, 500 stay.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fedem.clock import ManualClock, format_time
from fedem.errors import HubError
from fedem.hub.base import Hub, Revision
from fedem.registry.git import Git
from fedem.registry.model import Adapter, Lock, Spec, dump_adapter
from fedem.registry.ops import reconcile_remote
from fedem.registry.policy import parse_policy
from fedem.registry.reconcile import reconcile
from fedem.registry.store import snapshot_from_commit

N = 10_000
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=3, minutes=30)
# Every holder (user0, user5, ...) publishes as hub user hf-userN: the identity map is read
# and consulted as in production, at full size.
HOLDERS = [f"user{i}" for i in range(0, N, 5)]
POLICY_TEXT = (
    "ttl_minutes: 180\nmax_holds: 1\ncooldown_minutes: 60\nmaintainers: []\nidentities:\n"
    + "".join(f"  {u}: [hf-{u}]\n" for u in HOLDERS)
)
POLICY = POLICY_TEXT.encode()


class _MemoryHub(Hub):
    """Only what the reconciler reads."""

    url = "memory://"

    def __init__(self, revs: dict[str, list[Revision]]):
        self.revs = revs

    def list_repos(self):
        return list(self.revs)

    def revisions(self, repo):
        if repo not in self.revs:  # the Hub contract: a missing repo is a HubError
            raise HubError(f"unknown repo {repo!r} on {self.url}")
        return self.revs[repo]

    def create_repo(self, repo, *, exist_ok=True):
        raise NotImplementedError

    def publish(self, repo, folder, *, message, parent, author=None):
        raise NotImplementedError

    def download(self, repo, revision, dest):
        raise NotImplementedError

    def read_file(self, repo, path, revision=None):
        raise NotImplementedError

    def tag(self, repo, revision, tag):
        raise NotImplementedError


def build(n: int = N) -> tuple[dict[str, Adapter], dict[str, list[Revision]]]:
    """``n`` adapters; every fifth is held (since T0 or later); half of those published in time."""
    spec = Spec(base_model="seshu-base", targets=("in_proj",), rank=16, languages=("hi",))
    adapters, revs = {}, {}
    for i in range(n):
        name = f"a{i:05d}"
        lock = Lock()
        if i % 5 == 0:
            since = T0 + timedelta(minutes=60 if i % 20 == 15 else 0)  # a quarter still running at NOW
            lock = Lock(
                holder=f"user{i}", since=format_time(since), until=format_time(since + timedelta(hours=3))
            )
            if i % 10 == 0:
                revs[name] = [Revision(name, f"r{i}", None, f"hf-user{i}", since + timedelta(minutes=90))]
        adapters[name] = Adapter(name=name, spec=spec, lock=lock)
    return adapters, revs


def _remote(tmp: Path, adapters: dict[str, Adapter]) -> Path:
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    files = {a.path: dump_adapter(a).encode() for a in adapters.values()}
    files["registry/policy.yaml"] = POLICY
    Git(remote).commit_files("refs/heads/registry", None, files, "seed\n", "bench <bench@x>", T0)
    return remote


def run() -> list[tuple[str, float, str]]:
    adapters, revs = build()
    rows: list[tuple[str, float, str]] = []

    policy = parse_policy(POLICY)
    t = time.perf_counter()
    new, events = reconcile(adapters, NOW, revs, policy)
    rows.append(("registry.reconcile_pure_10k", time.perf_counter() - t, "s"))
    assert len(events) == 1500, len(events)
    rows.append(("registry.reconcile_pure_10k.events", float(len(events)), "count"))

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        remote = _remote(tmp, adapters)
        hub = _MemoryHub(revs)

        t = time.perf_counter()
        snap = snapshot_from_commit(Git(remote), "registry")
        rows.append(("registry.load_10k_files", time.perf_counter() - t, "s"))
        assert len(snap.adapters) == N and not snap.errors

        t = time.perf_counter()
        report = reconcile_remote(tmp / "cache.git", str(remote), hub=hub, clock=ManualClock(NOW))
        rows.append(("registry.reconcile_git_10k", time.perf_counter() - t, "s"))
        assert report.commit and len(report.events) == 1500

        t = time.perf_counter()
        again = reconcile_remote(tmp / "cache.git", str(remote), hub=hub, clock=ManualClock(NOW))
        rows.append(("registry.reconcile_git_10k_idle", time.perf_counter() - t, "s"))
        assert again.commit is None
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:40s} {value:10.3f} {unit}")
