"""``registry/policy.yaml``: lock TTL, per-user cap, cool-down, maintainers and hub identities."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from fedem.config import Invalid, from_dict
from fedem.errors import ConfigError, RegistryError
from fedem.registry.model import POLICY_PATH, is_login, load_yaml, same_login

# Hub account names (Hugging Face usernames, a file hub's author strings): a letter or digit,
# then letters, digits, '.', '_' or '-'. No spaces or commas, so a joined author list
# ("alice,bob") can never equal one mapped name.
_HUB_USER_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")


@dataclasses.dataclass(frozen=True)
class Policy:
    """Rules the server applies to claims and the reconciler to hub revisions.

    ``identities`` maps a GitHub login (who holds a lock) to the hub accounts whose revisions
    count as that login's work. GitHub and the hub are separate namespaces: the same name on
    both may be two different people, so a revision releases a lock only through this map,
    written by maintainers. ``identity_fallback: same-name`` opts in to also accepting a hub
    account spelled like the login, for logins the map does not name.
    """

    ttl_minutes: int = 180
    max_holds: int = 1  # simultaneous locks one login may hold
    cooldown_minutes: int = 60  # after a lock ends, its holder waits this long to claim it again
    maintainers: tuple[str, ...] = ()
    identities: Mapping[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    identity_fallback: Literal["none", "same-name"] = "none"

    def __post_init__(self) -> None:
        if not 1 <= self.ttl_minutes <= 7 * 24 * 60:
            raise Invalid("ttl_minutes", "an integer from 1 to 10080 (one week)")
        if self.max_holds < 1:
            raise Invalid("max_holds", "an integer of at least 1")
        if self.cooldown_minutes < 0:
            raise Invalid("cooldown_minutes", "an integer of at least 0")
        logins: dict[str, str] = {}
        owners: dict[str, str] = {}
        for login, users in self.identities.items():
            if not is_login(login):
                raise Invalid(f"identities.{login}", "keys that are GitHub logins (letters, digits, hyphens)")
            if login.casefold() in logins:
                raise Invalid(
                    f"identities.{login}",
                    f"each login once (logins ignore case; {logins[login.casefold()]!r} too)",
                )
            logins[login.casefold()] = login
            if not users:
                raise Invalid(f"identities.{login}", "a non-empty list of hub user names")
            for i, user in enumerate(users):
                if not _HUB_USER_RE.match(user):
                    raise Invalid(
                        f"identities.{login}[{i}]", "a hub user name (letters, digits, '.', '_', '-')"
                    )
                # One hub account is one person: mapped to two logins it could complete either's lock.
                other = owners.setdefault(user.casefold(), login)
                if other != login:
                    raise Invalid(
                        f"identities.{login}[{i}]",
                        f"a hub user mapped to one login only ({user!r} is also mapped to {other!r})",
                    )

    @property
    def ttl(self) -> timedelta:
        return timedelta(minutes=self.ttl_minutes)

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def is_maintainer(self, login: str) -> bool:
        return any(same_login(login, m) for m in self.maintainers)

    @functools.cached_property
    def _owner(self) -> Mapping[str, str]:
        # hub user (casefolded) -> the login it belongs to (casefolded)
        return {u.casefold(): login.casefold() for login, users in self.identities.items() for u in users}

    @functools.cached_property
    def _mapped(self) -> frozenset[str]:
        return frozenset(login.casefold() for login in self.identities)

    def is_hub_identity(self, login: str | None, author: str | None) -> bool:
        """Whether a hub revision by ``author`` counts as work of GitHub ``login``.

        Case-insensitive. An empty or unknown author never matches: a hub that cannot say who
        published must not release anyone's lock. A hub user the map gives to one login never
        counts for another, not even through the same-name fallback.
        """
        if not login or not author or author == "unknown":
            return False
        user, who = author.casefold(), login.casefold()
        owner = self._owner.get(user)
        if owner is not None:
            return owner == who
        if who in self._mapped:
            return False
        return (
            self.identity_fallback == "same-name" and _HUB_USER_RE.match(author) is not None and user == who
        )

    def has_hub_identity(self, login: str) -> bool:
        """Whether any hub revision could ever complete ``login``'s lock under this policy."""
        return self.identity_fallback == "same-name" or login.casefold() in self._mapped


def parse_policy(text: str | bytes, path: str = POLICY_PATH) -> Policy:
    """Parse the policy file; errors name the file and the field."""
    data: Any = load_yaml(text, path)
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return from_dict(Policy, data)
    except ConfigError as err:
        raise RegistryError(f"{path}: {err}") from None
