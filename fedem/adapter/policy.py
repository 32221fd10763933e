"""What an adapter may be: the size caps, dtypes and rank limit (its name rule is fedem.names').

The policy is a small frozen object so the relay, the CLI and the nightly evaluator apply one
set of limits, and a test (or an org) can tighten them without touching the checks.
"""

from __future__ import annotations

import dataclasses

from fedem.errors import AdapterRejected
from fedem.names import check_adapter_name

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class AdapterPolicy:
    """Limits every adapter must meet before any of its tensors is loaded.

    The defaults fit a rank-64 ``in_proj`` adapter of the largest preset (2.8b, ~220 MB fp32)
    with room to spare, and nothing much bigger.
    """

    max_rank: int = 64
    max_bytes: int = 512 * MiB  # the whole folder
    max_files: int = 8
    max_header_bytes: int = 1 * MiB  # the safetensors JSON header
    max_text_bytes: int = 1 * MiB  # each .json / .md / .yaml file
    allowed_dtypes: tuple[str, ...] = ("F32", "BF16", "F16")
    allowed_suffixes: tuple[str, ...] = (".safetensors", ".json", ".md", ".yaml")

    def __post_init__(self):
        for field in ("max_rank", "max_bytes", "max_files", "max_header_bytes", "max_text_bytes"):
            if getattr(self, field) < 1:
                raise ValueError(f"AdapterPolicy.{field} must be >= 1")


DEFAULT_POLICY = AdapterPolicy()


def validate_adapter_name(name: str) -> str:
    """Return ``name`` if it is a valid adapter name (:mod:`fedem.names`); else AdapterRejected."""
    return check_adapter_name(name, AdapterRejected)
