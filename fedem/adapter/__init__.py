"""The adapter package: what a relay adapter holds, and the validation it must pass before use."""

from fedem.adapter.base import BaseInfo
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.adapter.validate import AdapterReport, validate_adapter

__all__ = [
    "DEFAULT_POLICY",
    "AdapterPolicy",
    "AdapterReport",
    "BaseInfo",
    "validate_adapter",
    "validate_adapter_name",
]
