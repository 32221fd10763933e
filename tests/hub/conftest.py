"""Shared hub fixtures: a loopback fake Hub server, HF env isolation, and both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedem.hub.filehub import FileHub
from fedem.testing.fakehub import FakeHubServer, hf_client_env

ORG = "fedem-test"
USER = "alice"


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeHubServer]:
    """One fake Hub per test process; :func:`hf_env` resets its state for every test."""
    with FakeHubServer() as server:
        yield server


@pytest.fixture
def hf_env(tmp_path: Path, fake_server: FakeHubServer) -> Iterator[FakeHubServer]:
    """Point huggingface_hub at the fake server (fresh state), with cache and token in tmp_path.

    The Makefile exports HF_HUB_OFFLINE=1 for tests; this lifts it for the loopback server only.
    """
    fake_server.hub.reset()
    with hf_client_env(fake_server.url, tmp_path / "hf_home", token=f"hf_{USER}"):
        yield fake_server


def no_sleep(_seconds: float) -> None:
    """Backoff sleep for tests: retries happen, time does not pass."""


@pytest.fixture
def make_hf_hub(hf_env: FakeHubServer, tmp_path: Path):
    """Build an HfHub on the fake server (org fedem-test unless told otherwise)."""
    from fedem.hub.hfhub import HfHub

    def make(org: str = ORG, **options) -> HfHub:
        options.setdefault("sleep", no_sleep)
        return HfHub(org, endpoint=hf_env.url, cache_dir=tmp_path / "hf_cache", **options)

    return make


@pytest.fixture(params=["file", "hf"])
def hub(request: pytest.FixtureRequest, tmp_path: Path):
    """Each backend in turn: file:// in tmp_path, hf:// against the fake server."""
    hub = FileHub(tmp_path / "hub") if request.param == "file" else request.getfixturevalue("make_hf_hub")()
    hub.init()
    return hub
