"""The registry-at-scale simulation's config: a frozen, validated dataclass.

The defaults are the load of issue 12: 10,000 adapters, 1,000 contributors, 1,000 claims an
hour for a simulated day, claim jobs on up to 20 runners at once (GitHub's free tier), the
reconciler every 5 minutes (GitHub's shortest schedule), and the lock rules of
``registry/policy.yaml``'s defaults (:class:`fedem.registry.policy.Policy`).
"""

from __future__ import annotations

import dataclasses

from fedem.clock import parse_time
from fedem.config import Invalid
from fedem.registry.policy import Policy

_DEFAULT_POLICY = Policy()
# Logins "c0001" ... fit the identities map of registry/policy.yaml (64 KiB cap) up to here.
MAX_CONTRIBUTORS = 3000


@dataclasses.dataclass(frozen=True)
class RegistrySimConfig:
    """One registry-only simulation. Times are simulated; ``seed`` fixes the workload."""

    adapters: int = 10_000
    contributors: int = 1_000
    claims_per_hour: float = 1_000.0
    hours: float = 24.0
    concurrency: int = 20  # claim jobs running at once (GitHub Actions runners)
    job_seconds: float = 45.0  # simulated length of one claim job, queued to lock stamped
    reconcile_every_minutes: int = 5
    ttl_minutes: int = _DEFAULT_POLICY.ttl_minutes
    max_holds: int = _DEFAULT_POLICY.max_holds
    cooldown_minutes: int = _DEFAULT_POLICY.cooldown_minutes
    publish_fraction: float = 0.6  # holders who push a hub revision before their lock expires
    hot_adapters: int = 50  # a small popular set, so that claims collide (capped at ``adapters``)
    hot_fraction: float = 0.2  # share of claims aimed at the popular set
    seed: int = 0
    start: str = "2026-12-01T00:00:00Z"

    def __post_init__(self) -> None:
        _range("adapters", self.adapters, 1, 100_000)
        _range("contributors", self.contributors, 1, MAX_CONTRIBUTORS)
        _range("claims_per_hour", self.claims_per_hour, 0.001, 100_000)
        _range("hours", self.hours, 0.001, 24 * 30)
        _range("concurrency", self.concurrency, 1, 256)
        _range("job_seconds", self.job_seconds, 0.001, 3600)
        _range("reconcile_every_minutes", self.reconcile_every_minutes, 1, 24 * 60)
        _range("publish_fraction", self.publish_fraction, 0, 1)
        _range("hot_fraction", self.hot_fraction, 0, 1)
        _range("hot_adapters", self.hot_adapters, 1, 100_000)  # more than ``adapters``: all are popular
        _range("seed", self.seed, 0, 2**32 - 1)
        self.policy()  # the lock rules get the policy's own checks (Invalid names the field)
        try:
            parse_time(self.start)
        except ValueError:
            raise Invalid("start", "an ISO-8601 UTC time like 2026-12-01T00:00:00Z") from None

    def policy(self) -> Policy:
        return Policy(
            ttl_minutes=self.ttl_minutes, max_holds=self.max_holds, cooldown_minutes=self.cooldown_minutes
        )

    @property
    def expected_claims(self) -> int:
        return round(self.claims_per_hour * self.hours)


def _range(field: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        kind = "an integer" if isinstance(value, int) and isinstance(lo, int) else "a number"
        raise Invalid(field, f"{kind} from {lo:,} to {hi:,}, got {value:,}")
