"""File-system primitives of the file:// hub: no-follow reads and durable, read-only copies.

Everything a hub *reads* goes through directory file descriptors opened with ``O_NOFOLLOW``:
a symlink, FIFO or device planted in a revision is refused instead of followed (a link to
/dev/zero would otherwise report 0 bytes and never finish reading), and no read goes past its
byte budget. What a hub *writes* is fsynced, then made read-only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from fedem.errors import HubError
from fedem.hub.rules import validate_file_path
from fedem.io import fsync_dir


def list_regular_files(root_fd: int, what: str) -> list[tuple[str, int]]:
    """``(repo path, size)`` of every file under the revision open as ``root_fd``, sorted.

    Refuses (HubError) symlinks, special files and files no publish could have stored."""
    out: list[tuple[str, int]] = []

    def walk(dir_fd: int, prefix: str) -> None:
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            rel = prefix + entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    walk(sub, rel + "/")
                finally:
                    os.close(sub)
            elif not stat.S_ISREG(mode):
                raise HubError(f"cannot download {what}: {rel} is not a regular file (a link or device)")
            else:
                try:
                    validate_file_path(rel)
                except HubError as err:
                    raise HubError(f"cannot download {what}: stored file refused ({err})") from None
                out.append((rel, entry.stat(follow_symlinks=False).st_size))

    walk(root_fd, "")
    return out


def open_regular(root_fd: int, rel: str, what: str, *, missing: str | None = None) -> int:
    """An fd of the regular file ``rel`` under ``root_fd``, opened without following any link."""
    parts = rel.split("/")
    dir_fd = root_fd
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            if dir_fd != root_fd:
                os.close(dir_fd)
            dir_fd = nxt
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait forever for a writer.
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        raise HubError(missing or f"{what}: missing") from None
    except OSError as err:  # ELOOP (a symlink), ENOTDIR (a link where a folder should be), ...
        raise HubError(f"{what}: {rel} is not a regular file ({err.strerror})") from None
    finally:
        if dir_fd != root_fd:
            os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise HubError(f"{what}: {rel} is not a regular file (a link or device)")
    os.set_blocking(fd, True)
    return fd


def copy_capped(fd: int, out: Path, budget: int, what: str) -> int:
    """Copy the open file ``fd`` (closed here) to ``out``, at most ``budget`` bytes; return the count."""
    copied = 0
    with os.fdopen(fd, "rb") as src, open(out, "wb") as dst:
        while chunk := src.read(min(1 << 20, budget - copied + 1)):
            copied += len(chunk)
            if copied > budget:  # the file grew after it was counted
                raise HubError(f"cannot download {what}: {out.name} grew past the download cap")
            dst.write(chunk)
    return copied


def prepare_dest(dest: Path) -> Path:
    if dest.exists():
        if not dest.is_dir() or any(dest.iterdir()):
            raise HubError(f"cannot download into {dest}: it exists and is not an empty directory")
        dest.rmdir()
    return dest


def copy_durably(src: Path, dst: Path) -> None:
    # fsync before the rename and HEAD move: after a power cut HEAD must not name empty files.
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


def file_system_now(folder: Path) -> float:
    """The current time as the file system stamps it (the mtime of a file made now in ``folder``).

    Ages of files are measured against this, not ``time.time()``: the process clock may be
    shifted (a test under faketime, a skewed host sharing an NFS hub) while mtimes keep the
    file server's time, and a wrong "now" would sweep a live writer's staging folder.
    """
    fd, probe = tempfile.mkstemp(prefix=".now-", dir=folder)
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(probe)


def fsync_tree_dirs(root: Path) -> None:
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        fsync_dir(d)


def make_read_only(root: Path) -> None:
    for p in root.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    root.chmod(0o555)


def make_writable(root: Path) -> None:
    with contextlib.suppress(OSError):
        root.chmod(0o755)
        for p in root.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
