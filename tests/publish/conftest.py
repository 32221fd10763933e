"""Publish fixtures: both hub backends (file:// and hf:// on the loopback fake Hub), one clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from fedem.clock import UTC, ManualClock
from fedem.hub.filehub import FileHub
from fedem.testing.fakehub import FakeHubServer, hf_client_env

ORG = "fedem-test"
T0 = datetime(2026, 12, 1, 3, 17, tzinfo=UTC)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeHubServer]:
    with FakeHubServer() as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=["file", "hf"])
def hub(request: pytest.FixtureRequest, tmp_path: Path, clock, monkeypatch):
    """Each backend in turn, stamped by ``clock`` (the fake Hub's commits too)."""
    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))
    if request.param == "file":
        hub = FileHub(tmp_path / "hub", clock=clock)
        hub.init()
        yield hub
        return
    from fedem.hub.hfhub import HfHub

    server: FakeHubServer = request.getfixturevalue("fake_server")
    server.hub.reset()
    server.hub.clock = clock.now
    with hf_client_env(server.url, tmp_path / "hf_home", token="hf_maintainer"):
        hub = HfHub(ORG, endpoint=server.url, cache_dir=tmp_path / "hf_cache", sleep=lambda _s: None)
        hub.fake = server.hub  # tests reach the server's state (faults, tags) through this
        yield hub
