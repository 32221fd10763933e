"""``file://PATH``: a hub in a local (or shared) directory, for offline groups, demos and simulations.

Layout::

    PATH/.fedem-hub                      marker written by ``init``
    PATH/[ORG/]REPO/.fedem-repo          marker: this directory is a repo
    PATH/[ORG/]REPO/HEAD                 id of the newest revision ("" when empty)
    PATH/[ORG/]REPO/revisions/ID/...     the files of revision ID, read-only
    PATH/[ORG/]REPO/revisions/ID.json    its metadata (id, parent, author, time, message, content)
    PATH/[ORG/]REPO/tags/TAG             the revision id TAG names
    PATH/[ORG/]REPO/.lock                flock(2) target that serializes head moves

Why it is safe:

- *Atomic*: files are staged in a hidden ``revisions/.staging-*`` directory, renamed to
  ``revisions/ID``, then HEAD is replaced atomically. A revision exists for readers only once it
  is reachable from HEAD, so a publish killed at any point leaves nothing visible (at most an
  orphan directory, which a later identical publish reuses, and stale staging, swept later).
- *Compare-and-swap*: HEAD is re-read and moved under an exclusive ``flock`` on ``.lock``. Of
  two racing publishes on the same parent exactly one wins; the other gets ConflictError and
  its staging is removed. The kernel drops the lock when its holder dies, so a crashed writer
  cannot wedge the repo. (flock over NFS depends on the NFS setup; use a local or lock-capable
  filesystem for concurrent writers.)
- *Immutable, content-addressed*: ID = sha256 over the content hash, parent, author, hub time and
  message, so the same folder on different parents gets different ids. Revision files and
  metadata are made read-only and are never rewritten.
- *Read without trust*: anyone who can write the directory can edit it, so every id read back
  (HEAD, a parent, a tag) must be 64 hex digits and each metadata file must name its own id
  before the id is used in a path; a malformed or looping chain is a one-line HubError.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from fedem.clock import Clock, SystemClock, now_utc
from fedem.errors import ConflictError, HubError
from fedem.hub.base import (
    DOWNLOAD_MAX_BYTES,
    DOWNLOAD_MAX_FILES,
    Hub,
    Revision,
    check_download,
    check_size,
    register_backend,
)
from fedem.hub.fsutil import (
    copy_capped,
    copy_durably,
    file_system_now,
    fsync_tree_dirs,
    list_regular_files,
    make_read_only,
    make_writable,
    open_regular,
    prepare_dest,
)
from fedem.hub.rules import publishable_files, validate_file_path, validate_repo_name, validate_tag
from fedem.io import atomic_dir, atomic_write_json, atomic_write_text, pause_for_test, sha256_tree
from fedem.names import is_sha256

HUB_MARKER = ".fedem-hub"
REPO_MARKER = ".fedem-repo"
STAGING_PREFIX = ".staging-"
STALE_STAGING_S = 6 * 3600  # staging older than this belongs to a dead publish and is swept
# Revision ids are sha256 hex digests (fedem.names.is_sha256). Ids read back from HEAD, metadata
# and tags become path components (here and in callers' caches), and anyone who can write the
# hub directory can edit those files, so every id read from disk is checked before it is used.


def default_author() -> str:
    """Who publishes when no author is given: ``FEDEM_AUTHOR``, else the login name."""
    return os.environ.get("FEDEM_AUTHOR") or getpass.getuser()


class FileHub(Hub):
    """A hub in a directory. ``clock`` (a :class:`fedem.clock.Clock`; default: the system clock to
    the microsecond) stamps revisions; simulators inject it."""

    def __init__(self, root: str | os.PathLike, *, clock: Clock | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = f"file://{self.root}"
        self._clock = clock or SystemClock(precise=True)

    @classmethod
    def from_url(cls, url: str, **options) -> FileHub:
        path = url.removeprefix("file://")
        if not path:
            raise HubError(f"hub URL {url!r}: expected file://PATH")
        return cls(path, **options)

    # -- hub and repos ----------------------------------------------------------------------------
    def init(self) -> str:
        """Create the hub directory and its marker (idempotent)."""
        if self.root.exists() and not self.root.is_dir():
            raise HubError(f"cannot create hub at {self.root}: a file is in the way")
        marker = self.root / HUB_MARKER
        if not marker.exists():
            if self.root.is_dir() and any(self.root.iterdir()):
                raise HubError(
                    f"cannot create hub at {self.root}: directory is not empty and not a fedem hub"
                )
            atomic_write_json(marker, {"format": 1, "kind": "fedem-file-hub"})
        return f"file hub at {self.root}"

    def _repo_dir(self, repo: str, *, must_exist: bool = True) -> Path:
        path = self.root / validate_repo_name(repo)
        if must_exist and not (path / REPO_MARKER).is_file():
            if not (self.root / HUB_MARKER).is_file():
                raise HubError(f"no hub at {self.root} (create it with `fedem hub init {self.url}`)")
            raise HubError(f"unknown repo {repo!r} on {self.url}")
        return path

    def create_repo(self, repo: str, *, exist_ok: bool = True) -> None:
        path = self._repo_dir(repo, must_exist=False)
        if (path / REPO_MARKER).is_file():
            if exist_ok:
                return
            raise HubError(f"repo {repo!r} already exists on {self.url}")
        org = repo.split("/")[0] if "/" in repo else None
        if (org and (self.root / org / REPO_MARKER).exists()) or (not org and path.is_dir()):
            raise HubError(
                f"cannot create repo {repo!r} on {self.url}: the name clashes with an existing repo or org"
            )
        self.init()
        try:
            with atomic_dir(path) as tmp:
                (tmp / "revisions").mkdir()
                (tmp / "tags").mkdir()
                (tmp / "HEAD").write_text("")
                (tmp / REPO_MARKER).write_text(json.dumps({"repo": repo}) + "\n")
        except (FileExistsError, OSError) as err:
            # Lost a creation race (the rename found a non-empty directory): fine if it is a repo.
            if not (path / REPO_MARKER).is_file():
                raise HubError(f"cannot create repo {repo!r} at {path}: {err}") from err
            if not exist_ok:
                raise HubError(f"repo {repo!r} already exists on {self.url}") from err

    def list_repos(self) -> list[str]:
        if not (self.root / HUB_MARKER).is_file():
            raise HubError(f"no hub at {self.root} (create it with `fedem hub init {self.url}`)")
        names = []
        for marker in [*self.root.glob(f"*/{REPO_MARKER}"), *self.root.glob(f"*/*/{REPO_MARKER}")]:
            names.append(marker.parent.relative_to(self.root).as_posix())
        return sorted(names)

    # -- revisions --------------------------------------------------------------------------------
    def _corrupt(self, path: Path, what: str) -> HubError:
        repo = path.relative_to(self.root).as_posix()
        return HubError(f"corrupt hub repo {repo!r} on {self.url}: {what}")

    def _check_id(self, path: Path, rev_id: object, where: str) -> str:
        if not isinstance(rev_id, str) or not is_sha256(rev_id):
            raise self._corrupt(path, f"{where} holds {str(rev_id)[:80]!r}, which is not a revision id")
        return rev_id

    def _read_text(self, path: Path, file: Path) -> str:
        try:
            return file.read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise self._corrupt(path, f"{file.relative_to(path).as_posix()} unreadable ({err})") from err

    def _read_head(self, path: Path) -> str | None:
        head = self._read_text(path, path / "HEAD")
        return self._check_id(path, head, "HEAD") if head else None

    def _meta(self, path: Path, rev_id: str) -> dict:
        """The metadata of ``rev_id``, checked: it names itself, its parent is an id, fields are typed."""
        self._check_id(path, rev_id, "a revision reference")
        try:
            meta = json.loads((path / "revisions" / f"{rev_id}.json").read_text())
        except (OSError, ValueError) as err:
            raise self._corrupt(path, f"metadata of revision {rev_id} unreadable ({err})") from err
        if not isinstance(meta, dict) or meta.get("id") != rev_id:
            got = meta.get("id") if isinstance(meta, dict) else meta
            raise self._corrupt(
                path,
                f"metadata of revision {rev_id} names id {str(got)[:80]!r} (not a revision id of its own)",
            )
        if meta.get("parent") is not None:
            self._check_id(path, meta["parent"], f"the parent of revision {rev_id}")
        for field in ("author", "time", "message"):
            if not isinstance(meta.get(field), str):
                raise self._corrupt(path, f"metadata of revision {rev_id}: {field} is not text")
        try:
            when = datetime.fromisoformat(meta["time"])
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise self._corrupt(
                path, f"metadata of revision {rev_id}: time {meta['time'][:40]!r} is not a UTC time"
            )
        return meta

    def _tags(self, path: Path) -> dict[str, list[str]]:
        by_rev: dict[str, list[str]] = {}
        for tag_file in sorted((path / "tags").iterdir()):
            if not tag_file.name.startswith("."):
                target = self._check_id(path, self._read_text(path, tag_file), f"tag {tag_file.name!r}")
                by_rev.setdefault(target, []).append(tag_file.name)
        return by_rev

    def revisions(self, repo: str) -> list[Revision]:
        """Revisions reachable from HEAD, newest first (orphans of killed publishes are invisible).

        Every id on the chain is checked (a sha256, :func:`fedem.names.is_sha256`), and a chain that loops is refused."""
        path = self._repo_dir(repo)
        tags = self._tags(path)
        out: list[Revision] = []
        seen: set[str] = set()
        rev_id = self._read_head(path)
        while rev_id is not None:
            if rev_id in seen:  # a parent pointer edited into a cycle would otherwise loop forever
                raise self._corrupt(path, f"the chain of parents loops at revision {rev_id}")
            seen.add(rev_id)
            meta = self._meta(path, rev_id)
            out.append(
                Revision(
                    repo=repo,
                    id=rev_id,
                    parent=meta["parent"],
                    author=meta["author"],
                    time=datetime.fromisoformat(meta["time"]),
                    message=meta["message"],
                    tags=tuple(tags.get(rev_id, ())),
                )
            )
            rev_id = meta["parent"]
        return out

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        # flock, not a lock *file*: the kernel releases it when the holder exits or is killed.
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def publish(
        self, repo: str, folder: Path, *, message: str, parent: str | None, author: str | None = None
    ) -> Revision:
        path = self._repo_dir(repo)
        files = publishable_files(folder)
        author = author or default_author()
        # Cheap early check, so a stale publisher does not copy gigabytes first; re-checked under the lock.
        if self._read_head(path) != parent:
            raise ConflictError(self._conflict_msg(repo, parent, self._read_head(path)))
        revs_dir = path / "revisions"
        self._sweep_staging(revs_dir)
        staging = revs_dir / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            for rel, src in files:
                dst = staging / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                copy_durably(src, dst)
                pause_for_test("copy")
            fsync_tree_dirs(staging)
            content = sha256_tree(staging)  # hash what is stored, not what was read
            with self._locked(path):
                head = self._read_head(path)
                if head != parent:
                    raise ConflictError(self._conflict_msg(repo, parent, head))
                if head is not None and self._meta(path, head).get("content") == content:
                    raise HubError(
                        f"nothing to publish to {repo!r}: {folder} is identical to revision {head}"
                    )
                try:
                    when = now_utc(self._clock)
                except ValueError as err:
                    raise HubError(f"hub clock: {err}") from None
                meta = {
                    "id": "",
                    "parent": parent,
                    "author": author,
                    "time": when.isoformat(),
                    "message": message,
                    "content": content,
                }
                meta["id"] = rev_id = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
                final = revs_dir / rev_id
                if final.exists():  # an orphan of a killed identical publish: same bytes, keep it
                    shutil.rmtree(staging, ignore_errors=True)
                else:
                    make_read_only(staging)
                    os.replace(staging, final)
                meta_path = revs_dir / f"{rev_id}.json"
                if not meta_path.exists():
                    atomic_write_json(meta_path, meta)
                    meta_path.chmod(0o444)
                pause_for_test("head")
                atomic_write_text(path / "HEAD", rev_id + "\n")  # the commit point
        except BaseException:
            if staging.exists():
                make_writable(staging)
                shutil.rmtree(staging, ignore_errors=True)
            raise
        return Revision(repo, rev_id, parent, author, when, message, ())

    def _conflict_msg(self, repo: str, parent: str | None, head: str | None) -> str:
        return (
            f"stale parent for {repo!r} on {self.url}: expected head {parent or '(empty repo)'}, "
            f"but the head is {head or '(empty repo)'}; pull, redo your step on the new head, publish again"
        )

    def _sweep_staging(self, revs_dir: Path) -> None:
        now = file_system_now(revs_dir)
        for stale in revs_dir.glob(f"{STAGING_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - stale.stat().st_mtime > STALE_STAGING_S:
                    make_writable(stale)
                    shutil.rmtree(stale, ignore_errors=True)

    # -- reading ----------------------------------------------------------------------------------
    # Stored revisions are read through file descriptors, never by following names: a co-writer
    # can swap a file for a symlink (to /dev/zero, to the reader's own files) or a FIFO, and
    # stat() through a link reports a size that read() need not honour. Each path component is
    # opened with O_NOFOLLOW relative to its parent, the final fd is fstat'ed and must be a
    # regular file, and no read goes past the cap.
    def _open_revision(self, repo: str, rev_id: str) -> int:
        repo_dir = self._repo_dir(repo)
        path = repo_dir / "revisions" / self._check_id(repo_dir, rev_id, "a revision")
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as err:
            raise HubError(
                f"corrupt hub repo {repo!r} on {self.url}: revision {rev_id} is not a directory ({err.strerror})"
            ) from None

    def download(
        self,
        repo: str,
        revision: str | None,
        dest: Path,
        *,
        max_files: int = DOWNLOAD_MAX_FILES,
        max_bytes: int = DOWNLOAD_MAX_BYTES,
    ) -> Path:
        rev = self.resolve(repo, revision)
        what = f"revision {rev.id[:12]} of {repo!r} on {self.url}"
        root_fd = self._open_revision(repo, rev.id)
        try:
            files = list_regular_files(root_fd, what)
            check_download(len(files), sum(size for _, size in files), max_files, max_bytes, what)
            dest = prepare_dest(Path(dest))
            budget = max_bytes
            with atomic_dir(dest) as tmp:
                for rel, _ in files:
                    out = tmp / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    # A plain copy: the caller's copy is writable, unlike the stored revision.
                    budget -= copy_capped(open_regular(root_fd, rel, what), out, budget, what)
        finally:
            os.close(root_fd)
        return dest

    def read_file(
        self, repo: str, path: str, revision: str | None = None, *, max_bytes: int = 1 << 20
    ) -> bytes:
        rel = validate_file_path(path)
        rev = self.resolve(repo, revision)
        what = f"{repo}@{rev.id[:12]}/{rel}"
        root_fd = self._open_revision(repo, rev.id)
        try:
            fd = open_regular(root_fd, rel, what, missing=f"no file {rel!r} in {repo!r} at revision {rev.id}")
        finally:
            os.close(root_fd)
        with os.fdopen(fd, "rb") as f:
            check_size(os.fstat(f.fileno()).st_size, max_bytes, what)
            data = f.read(max_bytes + 1)  # the size may lie (a file growing under us): never read more
        check_size(len(data), max_bytes, what)
        return data

    def tag(self, repo: str, revision: str, tag: str) -> None:
        validate_tag(tag)
        rev = self.resolve(repo, revision)
        target = self._repo_dir(repo) / "tags" / tag
        tmp = target.with_name(f".{tag}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(rev.id + "\n")
        try:
            os.link(tmp, target)  # link(2) never replaces: exactly one tagger wins
        except FileExistsError:
            existing = target.read_text().strip()
            if existing != rev.id:
                raise HubError(
                    f"tag {tag!r} of {repo!r} already names revision {existing}; tags are immutable"
                ) from None
        finally:
            tmp.unlink(missing_ok=True)


@register_backend("file")
def _open(url: str, **options) -> FileHub:
    return FileHub.from_url(url, **options)
