"""``registry/policy.yaml``: lock TTL, per-user cap, cool-down and maintainers."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from fedem.config import Invalid, from_dict
from fedem.errors import ConfigError, RegistryError
from fedem.registry.model import POLICY_PATH, load_yaml, same_login


@dataclasses.dataclass(frozen=True)
class Policy:
    """Rules the server applies to claims. A lock's expiry is fixed when it is stamped."""

    ttl_minutes: int = 180
    max_holds: int = 1  # simultaneous locks one login may hold
    cooldown_minutes: int = 60  # after a lock ends, its holder waits this long to claim it again
    maintainers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.ttl_minutes <= 7 * 24 * 60:
            raise Invalid("ttl_minutes", "an integer from 1 to 10080 (one week)")
        if self.max_holds < 1:
            raise Invalid("max_holds", "an integer of at least 1")
        if self.cooldown_minutes < 0:
            raise Invalid("cooldown_minutes", "an integer of at least 0")

    @property
    def ttl(self) -> timedelta:
        return timedelta(minutes=self.ttl_minutes)

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def is_maintainer(self, login: str) -> bool:
        return any(same_login(login, m) for m in self.maintainers)


def parse_policy(text: str | bytes, path: str = POLICY_PATH) -> Policy:
    """Parse the policy file; errors name the file and the field."""
    data: Any = load_yaml(text, path)
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return from_dict(Policy, data)
    except ConfigError as err:
        raise RegistryError(f"{path}: {err}") from None
