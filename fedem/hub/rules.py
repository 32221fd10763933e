"""What may travel through a hub: repo and tag names, file paths, file types.

Both backends apply the same rules so that a folder published to ``file://`` and to ``hf://``
comes back byte for byte the same. Only data formats travel (safetensors, JSON, Markdown,
YAML): never pickles (``.bin``, ``.pt``, ``.pkl``), which run code when loaded.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path, PurePosixPath

from fedem.errors import HubError

ALLOWED_PATTERNS: tuple[str, ...] = ("*.safetensors", "*.json", "*.md", "*.yaml")

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO_RE = re.compile(rf"(?:{_PART}/)?{_PART}")
_TAG_RE = re.compile(_PART)
# A revision id as a backend makes it: a git commit (40 hex, hf://) or a sha256 (64 hex, file://).
REVISION_ID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MAX_NAME = 96


def validate_repo_name(name: str) -> str:
    """Return ``name`` if it is ``NAME`` or ``ORG/NAME`` made of ``[A-Za-z0-9._-]``; else HubError."""
    if not isinstance(name, str) or not _REPO_RE.fullmatch(name) or ".." in name or len(name) > MAX_NAME:
        raise HubError(
            f"invalid repo name {name!r}: use letters, digits, '.', '_', '-' (starting with a letter or "
            f"digit, at most {MAX_NAME} characters), with at most one 'org/' prefix and no '..'"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag name (and cannot be mistaken for a revision id)."""
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag) or ".." in tag or len(tag) > 128:
        raise HubError(
            f"invalid tag {tag!r}: use letters, digits, '.', '_', '-', starting with a letter or digit"
        )
    if REVISION_ID_RE.fullmatch(tag):
        raise HubError(f"invalid tag {tag!r}: it looks like a revision id")
    return tag


def is_revision_id(value: object) -> bool:
    """Whether ``value`` has the shape of a revision id of some backend (see :data:`REVISION_ID_RE`)."""
    return isinstance(value, str) and REVISION_ID_RE.fullmatch(value) is not None


def is_allowed_file(path: str) -> bool:
    """Whether a repo-relative path has one of the :data:`ALLOWED_PATTERNS`."""
    return any(fnmatch.fnmatch(PurePosixPath(path).name, pat) for pat in ALLOWED_PATTERNS)


def validate_file_path(path: str) -> str:
    """Return ``path`` as a clean repo-relative POSIX path of an allowed file type; else HubError."""
    p = PurePosixPath(path) if isinstance(path, str) else None
    if (
        p is None
        or not path
        or p.is_absolute()
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise HubError(f"invalid file path {path!r}: expected a relative path inside the repo, without '..'")
    if not is_allowed_file(path):
        raise HubError(
            f"refusing file {path!r}: only {', '.join(ALLOWED_PATTERNS)} files travel through a hub"
        )
    return path


def publishable_files(folder: str | Path) -> list[tuple[str, Path]]:
    """The files of ``folder`` to publish, as sorted ``(repo path, local path)`` pairs.

    Refuses (HubError, one line) a missing or empty folder, symlinks, and any file that is not
    one of :data:`ALLOWED_PATTERNS`, so that nothing is silently left behind.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"cannot publish {folder}: not a directory")
    out: list[tuple[str, Path]] = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            raise HubError(f"cannot publish {folder}: {rel} is a symlink (publish real files only)")
        if p.is_dir():
            continue
        if not is_allowed_file(rel):
            raise HubError(
                f"cannot publish {folder}: {rel} is not one of {', '.join(ALLOWED_PATTERNS)} "
                "(pickles and other files never travel through a hub)"
            )
        out.append((validate_file_path(rel), p))
    if not out:
        raise HubError(f"cannot publish {folder}: it holds no files")
    return out
