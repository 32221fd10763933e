"""Hostile files already on the registry branch never stop the reconciler or the status table.

Each is reported in one line naming the file, and every other adapter's lock is still released
or expired in the same run. (How fast they are refused is measured by ``make bench``.)
"""

from __future__ import annotations

from datetime import timedelta

from fedem.registry.model import parse_adapter
from fedem.registry.ops import reconcile_remote
from fedem.registry.store import GitStore

from ._helpers import T0, FakeHub, make_adapter, remote_file, rev

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
HOSTILE = {
    "registry/adapters/bomb.yaml": BOMB,
    "registry/adapters/deep.yaml": "x: " + "[" * 20_000 + "]" * 20_000 + "\n",
    "registry/adapters/deep-block.yaml": "".join("  " * i + f"k{i}:\n" for i in range(200))
    + "  " * 200
    + "v\n",
    "registry/adapters/huge.yaml": "# padding\n" * 1_000_000,  # 10 MB
    "registry/adapters/dupe.yaml": "name: dupe\nname: other\n",
}
EXPECTED = {
    "bomb.yaml": "anchors and aliases are not allowed",
    "deep.yaml": "nest",  # libyaml stops flow nesting at 1000 levels itself; fedem at 32
    "deep-block.yaml": "nested deeper than",
    "huge.yaml": "10,000,000 bytes exceeds the cap",
    "dupe.yaml": "duplicate key 'name'",
}


def test_hostile_files_are_reported_and_the_rest_reconciled(tmp_path, make_remote):
    remote = make_remote(
        [
            make_adapter("seshu-hi", holder="alice", since=T0),  # released by alice's revision
            make_adapter("seshu-te", holder="bob", since=T0 - timedelta(hours=5)),  # expired
        ],
        files=HOSTILE,
    )
    hub = FakeHub({"seshu-hi": [rev("seshu-hi", "a" * 40, "alice", T0 + timedelta(minutes=30))]})
    from fedem.clock import ManualClock

    report = reconcile_remote(
        tmp_path / "c", str(remote), hub=hub, clock=ManualClock(T0 + timedelta(hours=1))
    )
    assert sorted((e.kind, e.adapter) for e in report.events) == [
        ("expired", "seshu-te"),
        ("hop", "seshu-hi"),
    ]
    assert len(report.errors) == len(HOSTILE)
    for name, reason in EXPECTED.items():
        (line,) = [e for e in report.errors if f"registry/adapters/{name}:" in e]
        assert reason in line and "\n" not in line and len(line) < 400, line
    for name in ("seshu-hi", "seshu-te"):
        path = f"registry/adapters/{name}.yaml"
        assert parse_adapter(remote_file(remote, path), path).lock.holder is None
    # The hostile files are left as they were, for a maintainer to fix.
    assert (
        remote_file(remote, "registry/adapters/dupe.yaml") == HOSTILE["registry/adapters/dupe.yaml"].strip()
    )


def test_status_lists_the_hostile_files_under_the_table(tmp_path, make_remote):
    from fedem.registry.status import format_status, status_rows

    remote = make_remote([make_adapter("seshu-hi", holder="alice", since=T0)], files=HOSTILE)
    snap = GitStore(tmp_path / "c", str(remote)).snapshot()
    text = format_status(status_rows(snap.adapters, T0), snap.errors)
    assert text.splitlines()[1].startswith("seshu-hi") and text.count("unreadable: ") == len(HOSTILE)
