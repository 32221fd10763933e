"""Small helpers shared by the hub tests."""

from __future__ import annotations

from pathlib import Path


def make_folder(path: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path → bytes) under ``path`` and return it."""
    for rel, data in files.items():
        out = path / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return path


def read_folder(path: Path) -> dict[str, bytes]:
    """All files under ``path`` as relative path → bytes."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
