"""Test doubles shipped with fedem (importable by tests and benchmarks alike)."""
