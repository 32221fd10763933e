"""Reading holders' revisions from the hub: ``org/name`` repos, missing repos, unreadable ones."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from fedem.clock import ManualClock, SystemClock
from fedem.errors import HubError
from fedem.registry.ops import hub_revisions, reconcile_remote

from ._helpers import T0, FakeHub, make_adapter, remote_file, rev

HI = "registry/adapters/seshu-hi.yaml"
ORG = "fedem-test"


def _with_repo(adapter, hub_repo):
    return dataclasses.replace(adapter, spec=dataclasses.replace(adapter.spec, hub_repo=hub_repo))


@pytest.fixture
def hf_hub(tmp_path):
    """An HfHub on the loopback fake Hub, publishing as hub user alice."""
    from fedem.hub.hfhub import HfHub
    from fedem.testing.fakehub import FakeHubServer, hf_client_env

    with FakeHubServer() as server, hf_client_env(server.url, tmp_path / "hf_home", token="hf_alice"):
        yield HfHub(ORG, endpoint=server.url, cache_dir=tmp_path / "hf_cache", sleep=lambda s: None)


def _publish(hub, repo, tmp_path):
    hub.create_repo(repo)
    folder = tmp_path / "pkg"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    return hub.publish(repo, folder, message="hop", parent=None)


def test_org_prefixed_hub_repo_records_the_hop(hf_hub, make_remote, tmp_path):
    """``hub_repo: org/name`` on hf://org: the hop is found, not mistaken for a missing repo."""
    since = SystemClock().now() - timedelta(minutes=5)
    remote = make_remote([_with_repo(make_adapter(holder="alice", since=since), f"{ORG}/seshu-hi")])
    published = _publish(hf_hub, "seshu-hi", tmp_path)
    clock = ManualClock(since + timedelta(hours=4))  # past the TTL: only a seen hop avoids expiry
    report = reconcile_remote(tmp_path / "c", str(remote), hub=hf_hub, clock=clock)
    assert [(e.kind, e.revision) for e in report.events] == [("hop", published.id)], report
    assert report.errors == ()
    assert f"revision: {published.id}" in remote_file(remote, HI)


def test_missing_hf_repo_has_no_revisions_and_the_lock_expires(hf_hub, make_remote, tmp_path):
    _publish(hf_hub, "other", tmp_path)
    remote = make_remote([_with_repo(make_adapter(holder="alice"), f"{ORG}/seshu-hi")])
    report = reconcile_remote(
        tmp_path / "c", str(remote), hub=hf_hub, clock=ManualClock(T0 + timedelta(hours=4))
    )
    assert [e.kind for e in report.events] == ["expired"] and report.errors == ()


def test_repo_outside_the_hub_org_is_reported_not_expired(hf_hub, make_remote, tmp_path):
    """hf://fedem-test cannot list another org: absence there proves nothing."""
    remote = make_remote([_with_repo(make_adapter(holder="alice"), "someone-else/seshu-hi")])
    report = reconcile_remote(
        tmp_path / "c", str(remote), hub=hf_hub, clock=ManualClock(T0 + timedelta(hours=4))
    )
    assert report.events == () and report.commit is None
    assert len(report.errors) == 1 and report.errors[0].startswith("hub repo someone-else/seshu-hi: ")
    assert "holder: alice" in remote_file(remote, HI)


class _FlakyHub(FakeHub):
    """revisions() of some repos fails although they exist; list_repos() may fail too."""

    def __init__(self, revisions, broken=(), listing_fails=False):
        super().__init__(revisions)
        self.broken, self.listing_fails, self.listings = set(broken), listing_fails, 0

    def revisions(self, repo):
        if repo in self.broken:
            raise HubError(f"cannot list revisions of {repo}: HTTP 503")
        return super().revisions(repo)

    def list_repos(self):
        self.listings += 1
        if self.listing_fails:
            raise HubError("cannot list repos: HTTP 503")
        return super().list_repos()


def test_hub_revisions_tells_missing_from_unreadable():
    r1 = rev("a", "r1", "alice", T0)
    hub = _FlakyHub({"a": [r1], "b": [], "broken": []}, broken={"broken"})
    found, problems = hub_revisions(hub, ["a", "b"])
    assert found == {"a": [r1], "b": []} and problems == [] and hub.listings == 0, "listed only on failure"
    found, problems = hub_revisions(hub, ["a", "gone", "broken"])
    assert found == {"a": [r1], "gone": []}
    assert problems == ["hub repo broken: cannot list revisions of broken: HTTP 503"]
    hub.listing_fails = True
    found, problems = hub_revisions(hub, ["a", "gone"])
    assert found == {"a": [r1]} and problems == [
        "hub repo gone: unknown repo 'gone' on fake:// "
        "(listing the hub to see whether it exists failed too: cannot list repos: HTTP 503)"
    ]


def test_unreadable_repo_leaves_its_lock_alone(make_remote, tmp_path):
    remote = make_remote([make_adapter(holder="alice"), make_adapter("seshu-te", holder="bob")])
    hub = _FlakyHub({"seshu-hi": []}, broken={"seshu-hi"})
    report = reconcile_remote(
        tmp_path / "c", str(remote), hub=hub, clock=ManualClock(T0 + timedelta(hours=4))
    )
    assert [(e.kind, e.adapter) for e in report.events] == [("expired", "seshu-te")]
    assert report.errors == ("hub repo seshu-hi: cannot list revisions of seshu-hi: HTTP 503",)
    assert "holder: alice" in remote_file(remote, HI)
