"""Simulator test fixtures: a git that never reads the machine's or the user's configuration."""

from __future__ import annotations

import pytest

GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(autouse=True)
def git_isolated(monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
