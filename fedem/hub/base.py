"""The hub contract: immutable, parent-checked revisions of adapter repos.

A hub holds repos (one per adapter). Each publish makes a new revision whose expected
parent must equal the current head, a compare-and-swap: a stale parent raises
:class:`~fedem.errors.ConflictError` and writes nothing. Revisions are never overwritten.

Backends are chosen by URL scheme through a small registry (``file://``, ``hf://``).

Revision arguments (``download``, ``read_file``, ``tag``) accept a full revision id, a unique
prefix of at least 7 characters, a tag name, or None for the head; see :meth:`Hub.resolve`.
What may be published is fixed by :mod:`fedem.hub.rules` (safetensors/JSON/Markdown/YAML only).
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fedem.errors import HubError
from fedem.table import format_table

# What ``download`` fetches at most unless told otherwise: the adapter policy's caps
# (fedem.adapter.policy.DEFAULT_POLICY; a test keeps them equal). They are repeated here because
# the hub must not import the adapter package, and a hub holds adapters, so nothing bigger travels.
DOWNLOAD_MAX_FILES = 8
DOWNLOAD_MAX_BYTES = 512 << 20


@dataclasses.dataclass(frozen=True)
class Revision:
    """One published revision of a repo. ``time`` is the hub's clock (UTC), not the client's.

    ``author`` is who the hub says published it: on ``hf://`` the Hub's authenticated user(s),
    ``""`` when the Hub names nobody (never the client's claim); on ``file://``, which has no
    authentication, the name the publisher gave (see :func:`fedem.hub.filehub.default_author`).
    """

    repo: str
    id: str
    parent: str | None
    author: str
    time: datetime
    message: str = ""
    tags: tuple[str, ...] = ()


class Hub(abc.ABC):
    """A place adapters are published to and pulled from."""

    url: str

    @abc.abstractmethod
    def create_repo(self, repo: str, *, exist_ok: bool = True) -> None:
        """Create an empty repo (no revisions)."""

    @abc.abstractmethod
    def list_repos(self) -> list[str]:
        """Names of all repos."""

    @abc.abstractmethod
    def revisions(self, repo: str) -> list[Revision]:
        """All revisions, newest first. Raises HubError if the repo does not exist."""

    def head(self, repo: str) -> Revision | None:
        """The newest revision, or None for an empty repo."""
        revs = self.revisions(repo)
        return revs[0] if revs else None

    @abc.abstractmethod
    def publish(
        self, repo: str, folder: Path, *, message: str, parent: str | None, author: str | None = None
    ) -> Revision:
        """Publish ``folder`` as a new revision on top of ``parent`` (None: the repo is empty).

        Raises ConflictError, writing nothing, when the head is not ``parent``.
        """

    @abc.abstractmethod
    def download(
        self,
        repo: str,
        revision: str | None,
        dest: Path,
        *,
        max_files: int = DOWNLOAD_MAX_FILES,
        max_bytes: int = DOWNLOAD_MAX_BYTES,
    ) -> Path:
        """Materialize ``revision`` (None: head) into ``dest``; return ``dest``.

        A revision of more than ``max_files`` files or ``max_bytes`` bytes in all is refused with
        a one-line HubError *before* any file is fetched, and ``dest`` is not created: a hostile
        revision must not fill a disk before the adapter validator gets to count."""

    @abc.abstractmethod
    def read_file(
        self, repo: str, path: str, revision: str | None = None, *, max_bytes: int = 1 << 20
    ) -> bytes:
        """Bytes of one small file at ``revision`` (None: head); HubError if over ``max_bytes``.

        The cap keeps a hostile revision from making a reader (lineage, the relay) load a huge
        "small" file into memory."""

    @abc.abstractmethod
    def tag(self, repo: str, revision: str, tag: str) -> None:
        """Attach an immutable tag to a revision. Re-tagging a different revision is refused."""

    def init(self) -> str:
        """Make the hub ready for use (idempotent) and return a one-line description of it."""
        return self.url

    def resolve(self, repo: str, revision: str | None) -> Revision:
        """The revision that ``revision`` names: None (head), a full id, a unique id prefix of at
        least 7 characters, or a tag. Raises HubError, one line, when it names nothing."""
        revs = self.revisions(repo)
        if revision is None:
            if not revs:
                raise HubError(f"repo {repo!r} on {self.url} has no revisions yet")
            return revs[0]
        for rev in revs:
            if rev.id == revision:
                return rev
        for rev in revs:
            if revision in rev.tags:
                return rev
        if len(revision) >= 7:
            matches = [rev for rev in revs if rev.id.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise HubError(f"revision prefix {revision!r} is ambiguous in repo {repo!r} on {self.url}")
        raise HubError(f"unknown revision {revision!r} in repo {repo!r} on {self.url}")


def check_size(size: int, max_bytes: int, what: str) -> None:
    """Refuse a file over ``max_bytes`` before it is read."""
    if size > max_bytes:
        raise HubError(f"{what}: {size:,} bytes, over the {max_bytes:,}-byte cap for small files")


def check_download(files: int, size: int, max_files: int, max_bytes: int, what: str) -> None:
    """Refuse a download of more than ``max_files`` files or ``max_bytes`` bytes before fetching."""
    if files > max_files:
        raise HubError(f"cannot download {what}: {files} files, over the cap of {max_files}")
    if size > max_bytes:
        raise HubError(f"cannot download {what}: {size:,} bytes, over the cap of {max_bytes:,}")


_BACKENDS: dict[str, Callable[..., Hub]] = {}


def register_backend(scheme: str) -> Callable[[Callable[..., Hub]], Callable[..., Hub]]:
    """Decorator: ``@register_backend("file")`` makes ``open_hub("file://…")`` build it.

    The factory is called as ``factory(url, **options)`` with the options given to :func:`open_hub`.
    """

    def deco(factory: Callable[..., Hub]) -> Callable[..., Hub]:
        _BACKENDS[scheme] = factory
        return factory

    return deco


def open_hub(url: str, **options: Any) -> Hub:
    """Open the hub at ``url`` (``file://PATH`` or ``hf://ORG``). A bare path means ``file://``.

    ``options`` go to the backend's constructor, e.g. ``clock=`` for ``file://`` (a simulator's
    time) or ``sleep=``/``token=``/``endpoint=`` for ``hf://``.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        scheme, url = "file", "file://" + url
    _load_builtin_backends()
    if scheme not in _BACKENDS:
        raise HubError(
            f"hub URL {url!r}: unknown scheme {scheme!r} (expected one of: {', '.join(sorted(_BACKENDS))})"
        )
    return _BACKENDS[scheme](url, **options)


DEFAULT_HUB = "file://./hub"


def default_hub_url() -> str:
    """The hub URL to use when none is given: ``$FEDEM_HUB``, else ``file://./hub``."""
    return os.environ.get("FEDEM_HUB") or DEFAULT_HUB


def format_revisions(revs: list[Revision], *, full: bool = False) -> str:
    """A plain-text table: revision, parent, author, time (UTC), tags, message (newest first)."""
    width = 64 if full else 12

    def short(rev_id: str | None) -> str:
        return (rev_id or "-")[:width]

    rows = [
        (
            short(r.id),
            short(r.parent),
            r.author,
            r.time.strftime("%Y-%m-%d %H:%M:%S"),
            ",".join(r.tags) or "-",
        )
        + (r.message.split("\n")[0],)
        for r in revs
    ]
    return format_table(("REVISION", "PARENT", "AUTHOR", "TIME (UTC)", "TAGS", "MESSAGE"), rows)


def _load_builtin_backends() -> None:
    # Imported lazily so `import fedem.hub` stays cheap and huggingface_hub loads only when used.
    import importlib

    for mod in ("fedem.hub.filehub", "fedem.hub.hfhub"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
