"""Nightly fixtures: the registry remote factory of tests/registry."""

from registry._helpers import make_remote  # noqa: F401 (a fixture)
