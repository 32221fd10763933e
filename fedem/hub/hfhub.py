"""``hf://ORG``: adapters as Hugging Face Hub model repos ``ORG/NAME``, through ``huggingface_hub.HfApi``.

Mapping of the hub contract onto git commits on the ``main`` branch:

- *Revisions* are the commits of ``main`` (``list_repo_commits``, newest first). A revision's
  parent is the next commit in that list: fedem only ever commits linearly on ``main``, with a
  parent check, so history has no merges. Author and time are the Hub's (the commit's
  authenticated authors and the server's commit date), never the client's claim: a commit the
  Hub attributes to nobody has author ``""`` (unknown). An ``author=`` passed to ``publish`` is
  only written as a ``Fedem-Claimed-Author:`` trailer in the commit description, for people
  reading the Hub's history; it is client-controlled, so fedem never reads it back.
- *The root commit is not a revision.* ``create_repo`` makes an "initial commit" (only
  ``.gitattributes``). The oldest commit of ``main`` is therefore never listed; a repo whose only
  commit is the root is empty (head None), and ``publish(parent=None)`` is sent as
  ``create_commit(parent_commit=<root id>)``, so the compare-and-swap also holds for the first
  revision. (A repo with no commit at all is sent without a parent check.)
- *Publishing* is one ``create_commit`` whose operations make the tree equal to the folder (adds,
  plus deletes of files the parent had), with ``parent_commit=parent``: the server rejects a
  stale parent (HTTP 412/409), which becomes ConflictError. Each commit carries a random
  ``Fedem-Nonce:`` trailer, so the client can tell its own commit from someone else's after a lost
  response or when ``huggingface_hub`` skips a commit whose files all match the current head.
- *Tags* are git tags (``create_tag``, never with ``exist_ok``); an existing tag is never moved,
  and after every create the tag is read back: one that names another commit is refused.
- *Downloads* list the revision's tree with sizes and fetch each allowed file (``*.safetensors``,
  ``*.json``, ``*.md``, ``*.yaml``; never pickles) with ``hf_hub_download`` at that commit, into the
  HF cache, then copy them into ``dest`` atomically. The file count and total size are checked
  against the caps from the listing, before anything is fetched, and again against what arrived;
  ``read_file`` likewise asks the file's size (``paths-info``) before fetching it.

Token and endpoint resolve as in ``huggingface_hub`` (``HF_TOKEN`` or the CLI login;
``HF_ENDPOINT``). 429, 5xx and connection errors are retried with bounded, jittered exponential
backoff (``sleep`` is injectable); 401/403/404 become one-line HubErrors naming repo and revision.
``huggingface_hub`` itself also retries some calls (listing, preupload) before we see an error.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    RepoFile,
    constants,
    hf_hub_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

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
from fedem.hub.rules import (
    is_allowed_file,
    publishable_files,
    validate_file_path,
    validate_repo_name,
    validate_tag,
)
from fedem.io import atomic_dir
from fedem.names import is_git_commit

T = TypeVar("T")
NONCE_TRAILER = "Fedem-Nonce:"
AUTHOR_TRAILER = "Fedem-Claimed-Author:"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class _Retryable(Exception):
    """Internal: a transient failure worth another attempt."""


class HfHub(Hub):
    """Adapter repos as model repos ``ORG/NAME`` on a Hugging Face Hub (or a compatible endpoint).

    ``org`` may be empty, in which case repo names must carry their own ``ORG/`` prefix.
    ``sleep`` and ``rng`` drive the backoff (tests pass a no-op sleep); ``max_attempts`` bounds it.
    """

    def __init__(
        self,
        org: str = "",
        *,
        endpoint: str | None = None,
        token: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if org:
            validate_repo_name(org)
            if "/" in org:
                raise HubError(f"hub URL hf://{org}: expected hf://ORG (one namespace, no slash)")
        self.org = org
        self.url = f"hf://{org}"
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        self.api = HfApi(endpoint=self.endpoint, token=token, library_name="fedem")
        self.token = token
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_attempts = max(1, max_attempts)
        self.base_delay, self.max_delay = base_delay, max_delay
        self._sleep, self._rng = sleep, rng

    @classmethod
    def from_url(cls, url: str, **options) -> HfHub:
        return cls(url.removeprefix("hf://").strip("/"), **options)

    # -- plumbing ---------------------------------------------------------------------------------
    def repo_id(self, repo: str) -> str:
        """``NAME`` → ``ORG/NAME``; ``ORG/NAME`` is accepted when ORG is this hub's org."""
        validate_repo_name(repo)
        if "/" in repo:
            org = repo.split("/")[0]
            if self.org and org != self.org:
                raise HubError(f"repo {repo!r} is not in org {self.org!r} of hub {self.url}")
            return repo
        if not self.org:
            raise HubError(f"repo {repo!r}: hub {self.url} has no org, so name it ORG/NAME")
        return f"{self.org}/{repo}"

    def _call(self, what: str, fn: Callable[[], T], *, conflict: bool = False) -> T:
        """Run ``fn``; retry transient failures with backoff; turn the rest into one-line errors."""
        if constants.is_offline_mode():
            raise HubError(f"cannot {what}: HF_HUB_OFFLINE is set, and an hf:// hub needs the network")
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except Exception as err:
                mapped = _translate(err, what, self.endpoint, conflict=conflict)
                if not isinstance(mapped, _Retryable):
                    if mapped is err:
                        raise
                    raise mapped from err
                if attempt == self.max_attempts:
                    raise HubError(
                        f"cannot {what}: hub unavailable after {attempt} attempts ({mapped})"
                    ) from err
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self._sleep(delay * (0.5 + 0.5 * self._rng()))  # jitter: racers don't retry in step
        raise AssertionError("unreachable")

    def _commits(self, repo: str) -> list:
        rid = self.repo_id(repo)
        commits = self._call(f"list revisions of {rid}", lambda: self.api.list_repo_commits(rid))
        for c in commits:
            if not isinstance(c.commit_id, str) or not is_git_commit(c.commit_id):
                raise HubError(
                    f"cannot list revisions of {rid}: the hub returned {str(c.commit_id)[:80]!r}, "
                    "which is not a commit id (40 hex digits)"
                )
        return commits

    # -- hub and repos ----------------------------------------------------------------------------
    def init(self) -> str:
        """Check the token works and may write to the org."""
        info = self._call(f"check the token on {self.endpoint}", lambda: self.api.whoami())
        user = info.get("name", "?")
        orgs = {o.get("name") for o in info.get("orgs", [])}
        if self.org and self.org != user and self.org not in orgs:
            raise HubError(f"token user {user!r} is not a member of org {self.org!r} on {self.endpoint}")
        return f"hf hub {self.org or '(no org)'} on {self.endpoint} as {user}"

    def create_repo(self, repo: str, *, exist_ok: bool = True) -> None:
        rid = self.repo_id(repo)

        def create():
            try:
                self.api.create_repo(rid, repo_type="model", exist_ok=False)
            except HfHubHTTPError as err:
                if err.response is not None and err.response.status_code == 409:
                    if exist_ok:
                        return
                    raise HubError(f"repo {rid} already exists on {self.endpoint}") from None
                raise

        self._call(f"create repo {rid}", create)

    def list_repos(self) -> list[str]:
        if not self.org:
            raise HubError(f"cannot list repos of {self.url}: the URL names no org (use hf://ORG)")
        models = self._call(
            f"list repos of {self.org}", lambda: list(self.api.list_models(author=self.org, limit=None))
        )
        return sorted(m.id.split("/", 1)[1] for m in models if m.id.startswith(self.org + "/"))

    def revisions(self, repo: str) -> list[Revision]:
        return [rev for rev, _ in self._listing(repo)]

    def _listing(self, repo: str) -> list[tuple[Revision, str | None]]:
        """Revisions newest first, each with the fedem nonce of its commit (None if not ours)."""
        rid = self.repo_id(repo)
        commits = self._commits(repo)
        refs = self._call(f"list tags of {rid}", lambda: self.api.list_repo_refs(rid))
        tags: dict[str, list[str]] = {}
        for ref in refs.tags:
            tags.setdefault(ref.target_commit, []).append(ref.name)
        out = []
        for i, c in enumerate(commits[:-1]):  # the last (oldest) commit is the root, not a revision
            parent = commits[i + 1].commit_id if i + 1 < len(commits) - 1 else None
            rev = Revision(
                repo=repo,
                id=c.commit_id,
                parent=parent,
                # Only the Hub's own attribution: the claimed-author trailer is whatever the
                # publishing client wrote, so trusting it would let anyone sign as anyone.
                author=",".join(c.authors),
                time=c.created_at,
                message=_user_message(c.title, c.message),
                tags=tuple(sorted(tags.get(c.commit_id, ()))),
            )
            out.append((rev, _trailer(c.message, NONCE_TRAILER)))
        return out

    # -- publishing -------------------------------------------------------------------------------
    def publish(
        self, repo: str, folder: Path, *, message: str, parent: str | None, author: str | None = None
    ) -> Revision:
        rid = self.repo_id(repo)
        files = publishable_files(folder)
        commits = self._commits(repo)
        head = commits[0].commit_id if len(commits) > 1 else None
        if head != parent:  # early, cheap; the server checks again atomically
            raise ConflictError(_conflict_msg(rid, parent, head))
        base = parent or (commits[-1].commit_id if commits else None)
        old = (
            self._call(f"list files of {rid}", lambda: self.api.list_repo_files(rid, revision=base))
            if base
            else []
        )
        keep = {rel for rel, _ in files}
        deletes = [p for p in old if p not in keep and p != ".gitattributes"]
        nonce = uuid.uuid4().hex
        title, _, body = (message.strip() or "fedem publish").partition("\n")
        trailers = [f"{NONCE_TRAILER} {nonce}"] + ([f"{AUTHOR_TRAILER} {author}"] if author else [])
        description = (body.strip() + "\n\n" if body.strip() else "") + "\n".join(trailers)

        def commit():
            # Fresh operation objects per attempt: huggingface_hub refuses to reuse committed ones.
            ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(src)) for rel, src in files]
            ops += [CommitOperationDelete(path_in_repo=p) for p in deletes]
            return self.api.create_commit(
                rid, ops, commit_message=title, commit_description=description, parent_commit=base
            )

        try:
            info = self._call(f"publish to {rid}", commit, conflict=True)
        except ConflictError:
            mine = self._find_own(repo, nonce)  # a lost response may hide our own success
            if mine is not None:
                return mine
            raise ConflictError(_conflict_msg(rid, parent, self._head_id(repo))) from None
        mine = self._find_own(repo, nonce)
        if mine is not None:
            return mine
        # No commit of ours: huggingface_hub found every file equal to the current head and skipped.
        if info.oid == base:
            raise HubError(f"nothing to publish to {rid}: {folder} is identical to revision {base}")
        raise ConflictError(_conflict_msg(rid, parent, info.oid))

    def _find_own(self, repo: str, nonce: str) -> Revision | None:
        return next((rev for rev, n in self._listing(repo) if n == nonce), None)

    def _head_id(self, repo: str) -> str | None:
        commits = self._commits(repo)
        return commits[0].commit_id if len(commits) > 1 else None

    # -- reading ----------------------------------------------------------------------------------
    def _fetch(self, rid: str, path: str, rev_id: str) -> Path:
        return Path(
            self._call(
                f"download {path} from {rid}@{rev_id}",
                lambda: hf_hub_download(
                    rid,
                    path,
                    revision=rev_id,
                    endpoint=self.endpoint,
                    token=self.token,
                    cache_dir=self.cache_dir,
                    library_name="fedem",
                ),
            )
        )

    def _sizes(self, rid: str, rev_id: str, max_files: int, what: str) -> list[tuple[str, int]]:
        """``(path, size)`` of the allowed files of a revision, from the Hub's tree listing.

        Every file but ``.gitattributes`` counts toward ``max_files`` (others are skipped, never
        fetched), and the listing stops as soon as the count is over it: a repo of a million files
        is refused after one page, not after listing them all."""

        def listing() -> list[tuple[str, int]]:
            out, files = [], 0
            for entry in self.api.list_repo_tree(rid, revision=rev_id, recursive=True):
                if not isinstance(entry, RepoFile) or entry.path == ".gitattributes":
                    continue
                files += 1
                check_download(files, 0, max_files, 1, what)
                if is_allowed_file(entry.path):
                    out.append((entry.path, _size(entry)))
            return sorted(out)

        return self._call(f"list files of {rid}@{rev_id}", listing)

    def download(
        self,
        repo: str,
        revision: str | None,
        dest: Path,
        *,
        max_files: int = DOWNLOAD_MAX_FILES,
        max_bytes: int = DOWNLOAD_MAX_BYTES,
    ) -> Path:
        rid = self.repo_id(repo)
        rev = self.resolve(repo, revision)
        what = f"revision {rev.id[:12]} of {repo!r} on {self.url}"
        wanted = self._sizes(rid, rev.id, max_files, what)
        check_download(len(wanted), sum(size for _, size in wanted), max_files, max_bytes, what)
        dest = Path(dest)
        if dest.exists():
            if not dest.is_dir() or any(dest.iterdir()):
                raise HubError(f"cannot download into {dest}: it exists and is not an empty directory")
            dest.rmdir()
        fetched = 0
        with atomic_dir(dest) as tmp:
            for rel, _ in wanted:
                out = tmp / validate_file_path(rel)
                out.parent.mkdir(parents=True, exist_ok=True)
                local = self._fetch(rid, rel, rev.id)
                # The listing's size is the Hub's word; what arrived is checked too.
                fetched += local.stat().st_size
                check_download(len(wanted), fetched, max_files, max_bytes, what)
                shutil.copyfile(local, out)  # follows the cache's symlinks
        return dest

    def read_file(
        self, repo: str, path: str, revision: str | None = None, *, max_bytes: int = 1 << 20
    ) -> bytes:
        rel = validate_file_path(path)
        rid = self.repo_id(repo)
        rev = self.resolve(repo, revision)
        what = f"{rid}@{rev.id[:12]}/{rel}"
        info = self._call(
            f"look up {rel} in {rid}@{rev.id}",
            lambda: self.api.get_paths_info(rid, [rel], revision=rev.id),
        )
        entry = next((e for e in info if isinstance(e, RepoFile) and e.path == rel), None)
        if entry is None:
            raise HubError(f"no file {rel!r} in {rid} at revision {rev.id}")
        check_size(_size(entry), max_bytes, what)  # before fetching: the cap protects the disk too
        local = self._fetch(rid, rel, rev.id)
        check_size(local.stat().st_size, max_bytes, what)
        with open(local, "rb") as f:
            data = f.read(max_bytes + 1)
        check_size(len(data), max_bytes, what)
        return data

    def tag(self, repo: str, revision: str, tag: str) -> None:
        validate_tag(tag)
        rid = self.repo_id(repo)
        rev = self.resolve(repo, revision)

        def existing() -> str | None:
            refs = self._call(f"list tags of {rid}", lambda: self.api.list_repo_refs(rid))
            return next((r.target_commit for r in refs.tags if r.name == tag), None)

        def refuse(target: str) -> HubError:
            return HubError(f"tag {tag!r} of {rid} already names revision {target}; tags are immutable")

        current = existing()
        if current is not None:
            if current != rev.id:
                raise refuse(current)
            return
        # A 409 means we lost a race, or a lost response hid our own success: the read-back decides.
        with contextlib.suppress(ConflictError):
            self._call(
                f"tag {rid}@{rev.id}",
                lambda: self.api.create_tag(rid, tag=tag, revision=rev.id),
                conflict=True,
            )
        # Read the tag back, always: a Hub may answer the create of an existing tag with success
        # and keep its old target (what `create_tag(exist_ok=True)` makes of a 409), so success
        # proves nothing. A tag that names another commit is refused, never taken as ours.
        current = existing()
        if current != rev.id:
            raise refuse(current or "?")


def _size(entry: RepoFile) -> int:
    # For an LFS file the Hub reports both sizes; take the larger, so a pointer never hides a blob.
    return max(entry.size or 0, entry.lfs.size if entry.lfs is not None else 0)


def _trailer(message: str | None, key: str) -> str | None:
    for line in (message or "").splitlines():
        if line.startswith(key):
            return line[len(key) :].strip()
    return None


def _user_message(title: str, message: str | None) -> str:
    body = [ln for ln in (message or "").splitlines() if not ln.startswith((NONCE_TRAILER, AUTHOR_TRAILER))]
    text = "\n".join(body).strip()
    return f"{title}\n{text}" if text else title


def _conflict_msg(rid: str, parent: str | None, head: str | None) -> str:
    return (
        f"stale parent for {rid}: expected head {parent or '(empty repo)'}, but the head is "
        f"{head or '(empty repo)'}; pull, redo your step on the new head, publish again"
    )


def _translate(err: Exception, what: str, endpoint: str, *, conflict: bool) -> Exception:
    """Map a huggingface_hub/httpx2 failure to HubError/ConflictError, or _Retryable if transient."""
    if isinstance(err, (HubError, ConflictError)):
        return err
    # hf_hub_download wraps transport and server errors in LocalEntryNotFoundError: look beneath.
    while isinstance(err, LocalEntryNotFoundError) and err.__cause__ is not None:
        err = err.__cause__  # type: ignore[assignment]
    if isinstance(err, OfflineModeIsEnabled):
        return HubError(f"cannot {what}: HF_HUB_OFFLINE is set, and an hf:// hub needs the network")
    if isinstance(err, LocalTokenNotFoundError):
        return HubError(f"cannot {what}: no Hugging Face token (set HF_TOKEN or run `hf auth login`)")
    if isinstance(err, (httpx2.TransportError,)):
        return _Retryable(f"{type(err).__name__}: {err} ({endpoint})")
    if isinstance(err, RevisionNotFoundError):
        return HubError(f"cannot {what}: revision not found (404)")
    if isinstance(err, EntryNotFoundError):
        return HubError(f"cannot {what}: no such file (404)")
    if isinstance(err, RepositoryNotFoundError) and (err.response is None or err.response.status_code == 404):
        return HubError(f"cannot {what}: repo not found on {endpoint} (404, or private without access)")
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status in RETRY_STATUS:
            return _Retryable(f"HTTP {status}")
        if conflict and status in (409, 412):
            return ConflictError(f"cannot {what}: the head moved (HTTP {status})")
        if status == 401:
            return HubError(f"cannot {what}: authentication failed (401); check HF_TOKEN or `hf auth login`")
        if status == 403:
            return HubError(f"cannot {what}: permission denied (403); the token may not write here")
        if status == 404:
            return HubError(f"cannot {what}: not found (404)")
        return HubError(f"cannot {what}: HTTP {status}: {err.server_message or 'request refused'}")
    if isinstance(err, LocalEntryNotFoundError):
        return HubError(f"cannot {what}: {err}")
    if isinstance(err, ValueError) and "README.md" in str(err):  # the Hub rejected the card's metadata
        return HubError(f"cannot {what}: {err}")
    return err  # a bug, not an expected failure: keep its traceback


@register_backend("hf")
def _open(url: str, **options) -> HfHub:
    return HfHub.from_url(url, **options)
