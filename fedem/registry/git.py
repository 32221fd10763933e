"""A small, strict runner for the git plumbing the registry uses.

The registry never needs a working tree: it reads files straight from commits
(``ls-tree`` + ``cat-file --batch``), writes commits with ``fast-import`` and moves the
remote branch only by a plain ``push``, which the remote refuses unless it fast-forwards.
That refusal is the compare-and-swap everything else relies on.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from fedem.errors import ConflictError, RegistryError

# Everything between "scheme://" and the last "@" of the authority (the "/" that ends it, or
# whitespace or a quote): a password may itself hold "@", and all of the user info is hidden.
_SECRET_IN_URL = re.compile(r"(://)[^/\s'\"]*@")
# Messages git prints when a push lost a race (remote moved, or its ref lock was taken).
_LOST_RACE = (
    "[rejected]",
    "non-fast-forward",
    "fetch first",
    "cannot lock ref",
    "failed to update ref",
    "stale info",
)


def redact(text: str) -> str:
    """Hide credentials in URLs (``https://x-access-token:TOKEN@github.com`` -> ``https://***@``).

    Every message or log line that can hold a remote URL goes through this: in the workflows the
    remote carries the job's write token, and errors end up in public logs and PR comments.
    """
    return _SECRET_IN_URL.sub(r"\1***@", text)


class Git:
    """Run git in one repository (bare or not) with a fixed environment."""

    def __init__(self, repo: str | os.PathLike, env: Mapping[str, str] | None = None):
        self.repo = Path(repo)
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["git", "-C", str(self.repo), *args], input=input, capture_output=True, env=self.env, check=False
        )
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RegistryError(
                f"git {args[0]} failed in {self.repo}: {redact(err[-1] if err else 'no output')}"
            )
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode("utf-8", "replace").strip()

    def rev_parse(self, ref: str) -> str | None:
        proc = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def ls_tree(self, commit: str, prefix: str) -> list[tuple[str, str, str, str, int | None]]:
        """``(mode, type, sha, path, size)`` of every entry under ``prefix`` (recursively); size is
        None for what is not a blob. Sizes let a reader refuse a huge blob without reading it."""
        raw = self.run("ls-tree", "-r", "-z", "-l", "--full-tree", commit, "--", prefix).stdout
        entries = []
        for item in raw.split(b"\0"):
            if item:
                meta, _, path = item.partition(b"\t")
                mode, kind, sha, size = meta.decode().split()
                entries.append(
                    (
                        mode,
                        kind,
                        sha,
                        path.decode("utf-8", "surrogateescape"),
                        int(size) if size.isdigit() else None,
                    )
                )
        return entries

    def read_blobs(self, shas: Iterable[str]) -> list[bytes]:
        """Contents of many blobs in one ``cat-file --batch`` process."""
        shas = list(shas)
        if not shas:
            return []
        raw = self.run("cat-file", "--batch", input=("\n".join(shas) + "\n").encode()).stdout
        blobs, pos = [], 0
        for sha in shas:
            nl = raw.index(b"\n", pos)
            header = raw[pos:nl].decode().split(" ")
            if len(header) != 3 or header[1] != "blob":
                raise RegistryError(f"git object {sha}: expected a blob, got {' '.join(header[1:])}")
            size = int(header[2])
            blobs.append(raw[nl + 1 : nl + 1 + size])
            pos = nl + 1 + size + 1
        return blobs

    def read_file(self, commit: str, path: str) -> bytes | None:
        proc = self.run("cat-file", "blob", f"{commit}:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def commit_files(
        self,
        ref: str,
        parent: str | None,
        files: Mapping[str, bytes],
        message: str,
        committer: str,
        when: datetime,
    ) -> str:
        """Commit ``files`` (repo path -> bytes) on top of ``parent`` into local ``ref``.

        ``committer`` is ``"Name <email>"``. One fast-import process; with ``done`` at the end
        a stream cut short (a killed run) writes no commit at all.
        """
        stamp = f"{committer} {int(when.timestamp())} +0000"
        msg = message.encode()
        parts = [
            f"commit {ref}\n".encode(),
            f"committer {stamp}\n".encode(),
            b"data %d\n" % len(msg),
            msg,
            b"\n",
        ]
        if parent:
            parts.append(f"from {parent}\n".encode())
        for path in sorted(files):
            data = files[path]
            parts += [f"M 100644 inline {path}\n".encode(), b"data %d\n" % len(data), data, b"\n"]
        parts.append(b"done\n")
        self.run("update-ref", "-d", ref)
        self.run("fast-import", "--quiet", "--done", "--date-format=raw", input=b"".join(parts))
        sha = self.rev_parse(ref)
        if sha is None:  # pragma: no cover - fast-import reported success
            raise RegistryError(f"git fast-import wrote no commit to {ref}")
        return sha

    def push(self, remote: str, commit: str, branch: str) -> bool:
        """Move ``branch`` on ``remote`` to ``commit`` if that fast-forwards it; never forced.

        Returns True when this push moved the branch, False when the remote already had exactly
        this commit (a concurrent run built the same one). Raises ConflictError when the remote
        moved first (retry on fresh state), RegistryError for anything else.
        """
        proc = self.run("push", "--porcelain", remote, f"{commit}:refs/heads/{branch}", check=False)
        if proc.returncode == 0:
            # Porcelain status lines are "<flag>\t<from>:<to>\t<summary>"; "=" is "up to date".
            flags = [ln[:1] for ln in proc.stdout.decode("utf-8", "replace").splitlines() if "\t" in ln]
            return "=" not in flags
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if any(marker in text for marker in _LOST_RACE):
            raise ConflictError(f"push to {redact(remote)} {branch}: the branch moved; nothing was written")
        last = [ln for ln in text.strip().splitlines() if ln.strip()]
        raise RegistryError(
            f"git push to {redact(remote)} failed: {redact(last[-1] if last else 'no output')}"
        )

    def fetch(self, remote: str, branch: str, into: str) -> str | None:
        """Fetch ``branch`` of ``remote`` into local ref ``into``; None when the branch is absent."""
        proc = self.run("fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{into}", check=False)
        if proc.returncode != 0:
            text = proc.stderr.decode("utf-8", "replace")
            if "couldn't find remote ref" in text:
                return None
            last = [ln for ln in text.strip().splitlines() if ln.strip()]
            raise RegistryError(
                f"git fetch from {redact(remote)} failed: {redact(last[-1] if last else 'no output')}"
            )
        return self.rev_parse(into)


def ensure_repo(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Git:
    """A Git for ``path``, creating a bare repository there if nothing exists yet."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True, capture_output=True)
    git = Git(path, env)
    if git.run("rev-parse", "--git-dir", check=False).returncode != 0:
        raise RegistryError(f"{path}: not a git repository")
    return git
