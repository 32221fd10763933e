"""The federation's outside world for end-to-end tests, driven through the CLI only.

A bare git remote with the ``registry`` branch (the catalogue of ``registry/``), a file://
hub, and the steps contributors and the server take: claim (a PR branch, checked and merged
server side as data, never checked out), finetune --hub, push, reconcile.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from click.testing import CliRunner

from fedem.cli import main
from fedem.registry.model import adapter_path, parse_adapter

REPO_ROOT = Path(__file__).resolve().parents[2]
LOGINS = ("alice", "bob", "carol", "dave", "erin")
POLICY = (
    "ttl_minutes: 180\nmax_holds: 1\ncooldown_minutes: 60\nmaintainers: [boss]\n"
    "identities: {" + ", ".join(f"{u}: [{u}-hf]" for u in LOGINS) + "}\n"
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def fedem(*args, expect: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result.output


def make_world(tmp_path: Path, monkeypatch) -> dict:
    """A bare remote with the registry branch, and an empty file:// hub."""
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no gh: claims print their steps
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    shutil.copytree(REPO_ROOT / "registry", src / "registry")
    (src / "registry" / "policy.yaml").write_text(POLICY)
    git(src, "add", "-A")
    git(src, "commit", "-qm", "catalogue")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    fedem("registry", "init", "--repo", src, "--remote", remote)
    hub = f"file://{tmp_path / 'hub'}"
    fedem("hub", "init", hub)
    return {"remote": remote, "hub": hub, "tmp": tmp_path}


def claim(world, login: str, adapter: str = "seshu-te") -> None:
    """Contributor side opens the branch; server side checks the diff as data and applies it."""
    tmp, remote = world["tmp"], world["remote"]
    clone = Path(tempfile.mkdtemp(prefix=f"clone-{login}-", dir=tmp))
    git(clone, "init", "-q")
    git(clone, "remote", "add", "origin", str(remote))
    out = fedem("claim", adapter, "--login", login, "--repo", clone)
    branch = out.split()[1]
    base, head = git(remote, "rev-parse", "registry"), git(remote, "rev-parse", branch)
    server = Path(tempfile.mkdtemp(prefix="server-", suffix=".git", dir=tmp))
    git(tmp, "init", "-q", "--bare", str(server))
    # As claim.yml does: the PR's commits arrive as git objects only, never checked out.
    git(
        server,
        "fetch",
        "-q",
        str(remote),
        "+refs/heads/registry:refs/remotes/origin/registry",
        f"+{branch}:refs/pr/head",
    )
    flags = f"--author {login} --merge --trust-file-hub --base {base} --head {head}".split()
    out = fedem(
        "registry", "check-claim", "--repo", server, "--remote", remote, "--hub", world["hub"], *flags
    )
    assert out.startswith(f"applied: claim of {adapter} by {login}")


def hop(world, base, login: str, monkeypatch, *, new: bool, adapter: str = "seshu-te", run: str) -> Path:
    """Train ``adapter`` from the hub's head (or fresh) and push the result as the hub user."""
    monkeypatch.setenv("FEDEM_CONTRIBUTOR", login)
    monkeypatch.setenv("FEDEM_AUTHOR", f"{login}-hf")  # the hub account mapped to the login
    out_dir = world["tmp"] / f"run-{login}-{adapter}"
    new_flag = ["--new"] if new else []
    log = fedem(
        "finetune", "--hub", world["hub"], "--adapter", adapter, *new_flag, "--base", base,
        "--output", out_dir, "--no-progress", *run.split(),
    )  # fmt: skip
    fedem("push", adapter, out_dir / "adapter", "--hub", world["hub"])
    return out_dir / "adapter", log


def registry_file(world, adapter: str = "seshu-te"):
    path = adapter_path(adapter)
    return parse_adapter(git(world["remote"], "show", f"registry:{path}"), path)


def reconcile(world) -> str:
    return fedem(
        "registry", "reconcile", "--repo", world["tmp"] / "cache.git", "--remote", world["remote"],
        "--hub", world["hub"], "--trust-file-hub",
    )  # fmt: skip
