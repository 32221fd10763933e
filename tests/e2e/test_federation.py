"""The house standing: two contributors relay one adapter through the whole loop, CLI only.

claim (PR branch) → check-claim --merge (server) → finetune --hub → push → reconcile releases
the lock and records the hop → the next contributor claims, continues and pushes → lineage.
Real git (a bare remote), a real file:// hub, tiny real training; nothing mocked.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedem.cli import main
from fedem.registry.model import parse_adapter

REPO_ROOT = Path(__file__).resolve().parents[2]
TE = "registry/adapters/seshu-te.yaml"
POLICY = (
    "ttl_minutes: 180\nmax_holds: 1\ncooldown_minutes: 60\nmaintainers: [boss]\n"
    "identities: {alice: [alice-hf], bob: [bob-hf]}\n"
)
TINY_RUN = (
    "--set train.steps=4 --set train.warmup_steps=1 --set train.batch_size=4 --set data.block_size=64 "
    '--set data.sources=[{"embedded":"te"}]'
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


@pytest.fixture
def world(tmp_path, monkeypatch):
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


def claim(world, login: str) -> None:
    """Contributor side opens the branch; server side checks the diff as data and applies it."""
    tmp, remote = world["tmp"], world["remote"]
    clone = Path(tempfile.mkdtemp(prefix=f"clone-{login}-", dir=tmp))
    git(clone, "init", "-q")
    git(clone, "remote", "add", "origin", str(remote))
    out = fedem("claim", "seshu-te", "--login", login, "--repo", clone)
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
    assert out.startswith(f"applied: claim of seshu-te by {login}")


def hop(world, tiny_base, login: str, monkeypatch, *, new: bool) -> None:
    """Train the adapter from the hub's head (or fresh) and push the result as the hub user."""
    monkeypatch.setenv("FEDEM_CONTRIBUTOR", login)
    monkeypatch.setenv("FEDEM_AUTHOR", f"{login}-hf")  # the hub account mapped to the login
    out_dir = world["tmp"] / f"run-{login}"
    new_flag = ["--new"] if new else []
    fedem(
        "finetune",
        "--hub",
        world["hub"],
        "--adapter",
        "seshu-te",
        *new_flag,
        "--base",
        tiny_base,
        "--output",
        out_dir,
        "--no-progress",
        *TINY_RUN.split(),
    )
    fedem("push", "seshu-te", out_dir / "adapter", "--hub", world["hub"])


def registry_file(world):
    return parse_adapter(git(world["remote"], "show", f"registry:{TE}"), TE)


def reconcile(world) -> str:
    return fedem(
        "registry",
        "reconcile",
        "--repo",
        world["tmp"] / "cache.git",
        "--remote",
        world["remote"],
        "--hub",
        world["hub"],
        "--trust-file-hub",
    )


def test_two_contributors_relay_one_adapter_through_the_whole_loop(world, tiny_base, monkeypatch):
    claim(world, "alice")
    assert registry_file(world).lock.holder == "alice"
    # bob cannot take it while alice holds it
    with pytest.raises(AssertionError, match="held"):
        claim(world, "bob")

    hop(world, tiny_base, "alice", monkeypatch, new=True)
    out = reconcile(world)
    assert "hop" in out, out
    after_alice = registry_file(world)
    assert after_alice.lock.holder is None
    assert [h.contributor for h in after_alice.hops] == ["alice"]

    claim(world, "bob")
    hop(world, tiny_base, "bob", monkeypatch, new=False)
    reconcile(world)
    final = registry_file(world)
    assert final.lock.holder is None and [h.contributor for h in final.hops] == ["alice", "bob"]
    assert final.hops[1].revision != final.hops[0].revision
    head = git(world["remote"], "rev-parse", "registry")
    assert reconcile(world).strip() == "nothing to change"
    assert git(world["remote"], "rev-parse", "registry") == head, "an idle reconcile makes no commit"

    lineage = fedem("lineage", "seshu-te", "--hub", world["hub"])
    assert lineage.count("alice") >= 1 and lineage.count("bob") >= 1
    status = fedem("registry", "status", "--repo", world["tmp"] / "status.git", "--remote", world["remote"])
    row = next(line.split() for line in status.splitlines() if line.startswith("seshu-te"))
    assert row[1] == "free" and final.hops[1].revision[:8] in " ".join(row)
