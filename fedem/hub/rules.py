"""What may travel through a hub: repo and tag names, file paths, file types.

Both backends apply the same rules so that a folder published to ``file://`` and to ``hf://``
comes back byte for byte the same. Only data formats travel (safetensors, JSON, Markdown,
YAML): never pickles (``.bin``, ``.pt``, ``.pkl``), which run code when loaded.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath

from fedem.errors import HubError
from fedem.names import check_repo_name, check_tag, is_safe_file_name

ALLOWED_PATTERNS: tuple[str, ...] = ("*.safetensors", "*.json", "*.md", "*.yaml")


def validate_repo_name(name: str) -> str:
    """Return ``name`` if it is ``NAME`` or ``ORG/NAME`` (:func:`fedem.names.check_repo_name`); else HubError."""
    return check_repo_name(name, HubError)


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag name (and cannot be mistaken for a revision id); else HubError."""
    return check_tag(tag, HubError)


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
        or not all(is_safe_file_name(part) for part in path.split("/"))
    ):
        raise HubError(
            f"invalid file path {str(path)[:80]!r}: expected a relative path inside the repo whose parts "
            "use letters, digits, '.', '_', '-' (no '..')"
        )
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
        if not p.is_file():
            raise HubError(f"cannot publish {folder}: {rel} is not a regular file (FIFOs, devices, sockets)")
        if not is_allowed_file(rel):
            raise HubError(
                f"cannot publish {folder}: {rel} is not one of {', '.join(ALLOWED_PATTERNS)} "
                "(pickles and other files never travel through a hub)"
            )
        out.append((validate_file_path(rel), p))
    if not out:
        raise HubError(f"cannot publish {folder}: it holds no files")
    return out
