"""Nightly fixtures: the registry remote factory of tests/registry and the loopback Hub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from registry._helpers import make_remote  # noqa: F401 (a fixture)

from fedem.testing.fakehub import FakeHubServer


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeHubServer]:
    with FakeHubServer() as server:
        yield server
