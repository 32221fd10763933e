"""The registry's records: one adapter file, its spec, lock, last holder and hops.

On the ``registry`` branch each adapter is ``registry/adapters/<name>.yaml``. The records
here are frozen dataclasses; YAML is only their disk form (:func:`parse_adapter`,
:func:`dump_adapter`). Times are canonical UTC strings (see :mod:`fedem.clock`) so
a file round-trips byte for byte.

A lock is in one of three forms:

* free: every field null;
* requested: ``holder`` set, times null. Only a claim pull request carries this form;
  the server stamps the times when it applies the claim;
* held: ``holder``, ``since`` and ``until`` set (``until`` = ``since`` + the policy TTL).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from fedem import untrusted as untrusted_io
from fedem.clock import format_time, parse_time
from fedem.config import Invalid, from_dict, to_dict
from fedem.errors import ConfigError, RegistryError
from fedem.names import ADAPTER_NAME_RULE, check_adapter_name, is_adapter_name, repo_name_problem

# GitHub logins: alphanumerics and single hyphens, at most 39 characters.
_LOGIN_RE = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\Z")

ADAPTERS_DIR = "registry/adapters"
POLICY_PATH = "registry/policy.yaml"
MAX_FILE_BYTES = 64 * 1024

_TIME_EXPECTED = "an ISO-8601 UTC time like 2026-11-28T01:00:00Z"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def check_name(name: str, where: str = "adapter name") -> str:
    """Return ``name`` if it is a valid adapter name, else raise a one-line RegistryError."""
    return check_adapter_name(name, RegistryError, where)


def check_login(login: str, where: str = "login") -> str:
    if not isinstance(login, str) or not _LOGIN_RE.match(login):
        raise RegistryError(f"{where} {login!r}: expected a GitHub login (letters, digits, hyphens)")
    return login


def is_login(login: object) -> bool:
    """Whether ``login`` has the form of a GitHub login."""
    return isinstance(login, str) and _LOGIN_RE.match(login) is not None


def same_login(a: str | None, b: str | None) -> bool:
    """GitHub logins are case-insensitive."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def adapter_path(name: str) -> str:
    return f"{ADAPTERS_DIR}/{check_name(name)}.yaml"


def name_from_path(path: str) -> str:
    """The adapter name of a repo path, refusing anything but ``registry/adapters/<name>.yaml``."""
    expected = f"expected {ADAPTERS_DIR}/<name>.yaml with a name of {ADAPTER_NAME_RULE}"
    prefix, suffix = ADAPTERS_DIR + "/", ".yaml"
    if not (isinstance(path, str) and path.startswith(prefix) and path.endswith(suffix)):
        raise RegistryError(f"path {path!r}: not an adapter file ({expected})")
    stem = path[len(prefix) : -len(suffix)]
    if not is_adapter_name(stem):
        raise RegistryError(f"path {path!r}: not an adapter file ({expected})")
    return stem


def _check_time(field: str, value: str | None) -> None:
    if value is None:
        return
    try:
        parse_time(value)
    except ValueError:
        raise Invalid(field, _TIME_EXPECTED) from None


@dataclasses.dataclass(frozen=True)
class Spec:
    """What the adapter is: its base model, the LoRA targets and rank allowed, its languages."""

    base_model: str
    targets: tuple[str, ...]
    rank: int
    languages: tuple[str, ...] = ()
    data_hint: str = ""
    hub_repo: str | None = None  # None: the hub repo is named like the adapter

    def __post_init__(self) -> None:
        if not self.base_model.strip():
            raise Invalid("base_model", "a non-empty model name")
        if not self.targets or any(not t.strip() for t in self.targets):
            raise Invalid("targets", "a non-empty list of module names")
        if not 1 <= self.rank <= 1024:
            raise Invalid("rank", "an integer from 1 to 1024")
        if self.hub_repo is not None and repo_name_problem(self.hub_repo) is not None:
            raise Invalid("hub_repo", "a hub repo name like 'seshu-hi' or 'org/seshu-hi'")


@dataclasses.dataclass(frozen=True)
class Lock:
    """Who holds the adapter, from when until when (server times), and the claim that did it."""

    holder: str | None = None
    since: str | None = None
    until: str | None = None
    claim: str | None = None  # e.g. "#12", the pull request that made the claim

    def __post_init__(self) -> None:
        if self.holder is not None and not _LOGIN_RE.match(self.holder):
            raise Invalid("holder", "a GitHub login or null")
        _check_time("since", self.since)
        _check_time("until", self.until)
        if self.holder is None and (self.since, self.until, self.claim) != (None, None, None):
            raise Invalid("holder", "a login when since, until or claim is set (a free lock is all null)")
        if (self.since is None) != (self.until is None):
            raise Invalid("until" if self.until is None else "since", "both since and until, or neither")
        if self.since is not None and self.until_at <= self.since_at:
            raise Invalid("until", "a time after since")

    @property
    def state(self) -> Literal["free", "requested", "held"]:
        if self.holder is None:
            return "free"
        return "requested" if self.since is None else "held"

    @functools.cached_property
    def since_at(self) -> datetime:
        return parse_time(self.since)  # type: ignore[arg-type]

    @functools.cached_property
    def until_at(self) -> datetime:
        return parse_time(self.until)  # type: ignore[arg-type]

    def expired(self, now: datetime) -> bool:
        return self.state == "held" and now >= self.until_at


FREE = Lock()


@dataclasses.dataclass(frozen=True)
class Previous:
    """The last lock that ended, so the cool-down can be enforced after it."""

    holder: str
    since: str
    ended: str
    reason: Literal["hop", "expired", "released", "forced"]

    def __post_init__(self) -> None:
        _check_time("since", self.since)
        _check_time("ended", self.ended)

    @functools.cached_property
    def ended_at(self) -> datetime:
        return parse_time(self.ended)


@dataclasses.dataclass(frozen=True)
class Hop:
    """One completed relay hop: a holder's hub revision that released its lock."""

    contributor: str
    revision: str
    time: str  # the hub's time of the revision
    claimed_at: str  # the lock's since
    # Set later by the nightly job: the checkpoint revision this hop was merged into, or the
    # checkpoint revision its adapter revision was rejected against (it is not gated again on
    # that checkpoint: a second draw of documents would be a second chance to pass by luck).
    merged_into: str | None = None
    rejected_on: str | None = None

    def __post_init__(self) -> None:
        _check_time("time", self.time)
        _check_time("claimed_at", self.claimed_at)
        if not self.revision.strip():
            raise Invalid("revision", "a non-empty revision id")


@dataclasses.dataclass(frozen=True)
class Adapter:
    """One adapter file: spec, lock, the last ended lock, and the history of hops."""

    name: str
    spec: Spec
    lock: Lock = FREE
    previous: Previous | None = None
    hops: tuple[Hop, ...] = ()

    def __post_init__(self) -> None:
        if not is_adapter_name(self.name):
            raise Invalid("name", f"a name of {ADAPTER_NAME_RULE}")

    @property
    def hub_repo(self) -> str:
        return self.spec.hub_repo or self.name

    @property
    def path(self) -> str:
        return adapter_path(self.name)


def _plain(value: Any) -> Any:
    # YAML reads an unquoted 2026-11-28T01:00:00Z as a datetime; the records keep strings.
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_yaml(text: str | bytes, where: str, *, untrusted: bool = True) -> Any:
    """Parse a registry file to plain data, bounded (:mod:`fedem.untrusted`), with one-line errors.

    Every registry file is untrusted, whether it came by pull request or already sits on the
    branch (a maintainer's mistake, a bad merge): anchors and aliases, deep nesting, duplicate
    keys, out-of-range numbers and files over 64 KiB are refused. (``untrusted`` is kept for
    callers; there is no trusting mode.)
    """
    return _plain(untrusted_io.parse_yaml(text, where, RegistryError, max_bytes=MAX_FILE_BYTES))


class _Unusual(Exception):
    """Raised by the fast path; :func:`fedem.config.from_dict` then decides and words the error."""


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    hints = get_type_hints(cls)
    return tuple(
        (f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
    )


def _fast(tp: Any, value: Any) -> Any:
    # Handles exactly the types these records use, and only well-formed values.
    if tp is str:
        if type(value) is str:
            return value
    elif tp is int:
        if type(value) is int:
            return value
    elif dataclasses.is_dataclass(tp):
        if type(value) is dict:
            plan = _plan(tp)
            if len(value) > len(plan) or not value.keys() <= {name for name, _, _ in plan}:
                raise _Unusual
            kwargs = {}
            for name, hint, required in plan:
                if name in value:
                    kwargs[name] = _fast(hint, value[name])
                elif required:
                    raise _Unusual
            try:
                return tp(**kwargs)
            except Invalid:
                raise _Unusual from None
    else:
        origin, args = get_origin(tp), get_args(tp)
        if origin is Literal:
            if value in args:
                return value
        elif origin is tuple:
            if type(value) is list:
                return tuple(_fast(args[0], v) for v in value)
        elif args and args[-1] is type(None) and len(args) == 2:
            return None if value is None else _fast(args[0], value)
    raise _Unusual


def adapter_from_data(data: Any, where: str, *, expect_name: str | None = None) -> Adapter:
    """Build an Adapter from plain data; errors name ``where`` and the field."""
    if not isinstance(data, Mapping):
        raise RegistryError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        # fedem.config.from_dict re-reads type hints on every call (~300 us per file); a 10,000
        # adapter registry needs the fast path, which gives the same records for valid files.
        adapter = _fast(Adapter, data)
    except _Unusual:
        try:
            adapter = from_dict(Adapter, dict(data))
        except ConfigError as err:
            raise RegistryError(f"{where}: {err}") from None
    if expect_name is not None and adapter.name != expect_name:
        raise RegistryError(
            f"{where}: name: expected {expect_name!r} (the file's name), got {adapter.name!r}"
        )
    return adapter


def parse_adapter(
    text: str | bytes, path: str, *, untrusted: bool = True, allow_request: bool = False
) -> Adapter:
    """Parse the adapter file at repo ``path`` (its name must match the file name).

    A requested lock (holder without times) is accepted only with ``allow_request``: on the
    registry branch every lock is stamped by the server.
    """
    adapter = adapter_from_data(
        load_yaml(text, path, untrusted=untrusted), path, expect_name=name_from_path(path)
    )
    if adapter.lock.state == "requested" and not allow_request:
        raise RegistryError(
            f"{path}: lock.since: expected {_TIME_EXPECTED}; locks here are stamped by the server"
        )
    return adapter


def dump_adapter(adapter: Adapter) -> str:
    """The canonical YAML text of ``adapter`` (what :func:`parse_adapter` reads back)."""
    data = to_dict(adapter)
    for hop in data["hops"]:
        if hop["rejected_on"] is None:  # written only when set: older files round-trip byte for byte
            del hop["rejected_on"]
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


__all__ = [
    "ADAPTERS_DIR",
    "FREE",
    "POLICY_PATH",
    "Adapter",
    "Hop",
    "Lock",
    "Previous",
    "Spec",
    "adapter_path",
    "check_login",
    "check_name",
    "dump_adapter",
    "is_login",
    "load_yaml",
    "name_from_path",
    "parse_adapter",
    "same_login",
]
