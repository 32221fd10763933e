"""The CLI: thin commands, one `error:` line and exit 2 on bad input, never a traceback."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedem.cli import main
from fedem.clock import SystemClock, format_time
from fedem.registry.model import parse_adapter

from ._helpers import T0, TEST_IDENTITIES, git, make_adapter, remote_file, write_catalogue

HI = "registry/adapters/seshu-hi.yaml"


def cli(*args: str, expect: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


def test_status_table(make_remote, tmp_path):
    remote = make_remote(
        [make_adapter(holder="alice"), make_adapter("seshu-te", holder="bob", since=T0 - timedelta(hours=4))]
    )
    now = format_time(T0 + timedelta(hours=1))
    out = cli("registry", "status", "--repo", tmp_path / "c", "--remote", remote, "--now", now).output
    lines = out.splitlines()
    assert lines[0].split() == ["adapter", "state", "holder", "since", "expires", "in", "last", "revision"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert (
        rows["seshu-hi"][:4] == ["seshu-hi", "held", "alice", "2026-11-28T09:00:00Z"]
        and "2h00m" in rows["seshu-hi"]
    )
    assert rows["seshu-te"][1] == "expired" and "ago" in rows["seshu-te"]
    assert rows["seshu-ta"][1:] == ["free", "-", "-", "-", "-"]


def test_status_from_dir_and_bad_policy(tmp_path):
    write_catalogue(tmp_path)
    assert "seshu-ta" in cli("registry", "status", "--dir", tmp_path).output
    (tmp_path / "registry" / "policy.yaml").write_text("ttl_minutes: forever\n")
    result = cli("registry", "status", "--dir", tmp_path, expect=2)
    assert (
        result.output.strip()
        == "error: registry/policy.yaml: ttl_minutes: expected an integer, got 'forever'"
    )


def test_bad_name_and_bad_now(tmp_path):
    out = cli("claim", "../x", "--login", "alice", "--no-pr", "--repo", tmp_path, expect=2).output
    assert out.startswith("error: invalid adapter name '../x': use lower-case") and out.count("\n") == 1
    out = cli("registry", "status", "--dir", ".", "--now", "tomorrow", expect=2).output
    assert out.startswith("error: --now:")


def test_init_twice_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    write_catalogue(src)
    git(src, "add", "-A")
    git(src, "commit", "-qm", "c")
    remote = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    assert "created" in cli("registry", "init", "--repo", src, "--remote", remote).output
    assert git(remote, "ls-tree", "--name-only", "registry") == "registry"
    out = cli("registry", "init", "--repo", src, "--remote", remote, expect=2).output
    assert "already has a 'registry' branch; nothing changed" in out
    assert "created local branch" in cli("registry", "init", "--repo", src, "--local").output
    assert git(src, "rev-parse", "--abbrev-ref", "HEAD") == "main", "init never switches branches"


def test_claim_prints_steps_and_check_claim_comments(make_remote, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no gh: the steps are printed
    remote = make_remote()
    clone = tmp_path / "clone"
    clone.mkdir()
    git(clone, "init", "-q")
    git(clone, "remote", "add", "origin", str(remote))
    out = cli("claim", "seshu-hi", "--login", "alice", "--repo", clone).output
    assert "To finish:" in out and "gh pr create --base registry --head fedem/claim-seshu-hi-alice-" in out
    branch = out.split()[1]
    base, head = git(remote, "rev-parse", "registry"), git(remote, "rev-parse", branch)
    server = tmp_path / "server.git"
    git(tmp_path, "init", "-q", "--bare", str(server))
    git(server, "fetch", "-q", str(remote), f"+{branch}:refs/pr/1")
    common = ["--repo", server, "--remote", remote, "--base", base, "--head", head]
    bad = cli(
        "registry",
        "check-claim",
        *common,
        "--author",
        "mallory",
        "--comment-file",
        tmp_path / "c1.md",
        expect=2,
    )
    assert "but the pull request is by 'mallory'" in bad.output
    assert (tmp_path / "c1.md").read_text().startswith("**Claim rejected:**")
    ok = cli(
        "registry",
        "check-claim",
        *common,
        "--author",
        "alice",
        "--pr",
        "3",
        "--merge",
        "--comment-file",
        tmp_path / "c2.md",
    )
    assert ok.output.startswith("applied: claim of seshu-hi by alice: held until")
    assert "**Claimed** `seshu-hi` for @alice" in (tmp_path / "c2.md").read_text()
    assert parse_adapter(remote_file(remote, HI), HI).lock.holder == "alice"


def test_reconcile_cli_reports_bad_files_but_commits_the_rest(make_remote, tmp_path):
    remote = make_remote([make_adapter(holder="alice")], files={"registry/adapters/broken.yaml": "{oops\n"})
    now = format_time(T0 + timedelta(hours=4))
    result = cli(
        "registry", "reconcile", "--repo", tmp_path / "c", "--remote", remote, "--now", now, expect=2
    )
    assert "expired: seshu-hi held by alice" in result.output
    assert "warning: registry/adapters/broken.yaml: invalid YAML" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("error: 1 item(s) were left alone")
    assert "holder: null" in remote_file(remote, HI)


def test_reconcile_cli_with_a_file_hub(make_remote, tmp_path):
    filehub = pytest.importorskip("fedem.hub.filehub")
    since = SystemClock().now() - timedelta(minutes=5)
    remote = make_remote([make_adapter(holder="alice", since=since)])
    hub = filehub.FileHub(tmp_path / "hub")
    hub.create_repo("seshu-hi")
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    revision = hub.publish("seshu-hi", folder, message="hop", parent=None, author="alice")
    args = ["registry", "reconcile", "--repo", tmp_path / "c", "--remote", remote, "--hub", hub.url]
    # Anyone writing the folder picks a revision's author and time: refused unless trusted.
    refused = cli(*args, expect=2).output
    assert refused.strip().splitlines()[-1] == (
        f"error: --hub {hub.url}: a file:// hub does not authenticate who published a revision or "
        "when, so its revisions cannot release locks; use an hf:// hub (only for tests and "
        "simulations: pass --trust-file-hub)"
    )
    assert "holder: alice" in remote_file(remote, HI), "a refused run writes nothing"
    bare = cli(*args[:-1], str(tmp_path / "hub"), expect=2).output
    assert "--trust-file-hub" in bare, "a bare path is a file:// hub too"
    out = cli(*args, "--trust-file-hub").output
    assert f"hop: seshu-hi by alice, revision {revision.id}" in out
    assert "nothing to change" in cli(*args, "--trust-file-hub").output


def test_check_claim_refuses_a_file_hub(make_remote, tmp_path):
    remote = make_remote()
    args = ["registry", "check-claim", "--repo", tmp_path / "c", "--remote", remote]
    args += ["--base", "HEAD", "--head", "HEAD", "--author", "alice", "--hub", f"file://{tmp_path}/hub"]
    assert "pass --trust-file-hub" in cli(*args, expect=2).output


def test_force_release_cli(make_remote, tmp_path):
    remote = make_remote([make_adapter(holder="alice")], policy="maintainers: [boss]\n" + TEST_IDENTITIES)
    args = ["registry", "force-release", "seshu-hi", "--repo", tmp_path / "c", "--remote", remote]
    assert "is not a maintainer" in cli(*args, "--login", "eve", expect=2).output
    assert cli(*args, "--login", "boss").output.startswith("released seshu-hi")


def test_release_needs_a_login_without_gh(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("gh"):
        pytest.skip("gh is installed system-wide")
    assert "--login: required" in cli("release", "seshu-hi", "--repo", Path(tmp_path), expect=2).output


def test_registry_commands_need_no_ml_stack(tmp_path):
    """The workflows install only pyyaml, click (and huggingface_hub for --hub): keep it so."""
    import subprocess
    import sys

    write_catalogue(tmp_path)
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'peft', 'datasets', 'numpy', 'safetensors', 'accelerate'):\n"
        "    sys.modules[m] = None  # importing it now fails\n"
        "from fedem.cli import main\n"
        f"main(['registry', 'status', '--dir', {str(tmp_path)!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "seshu-hi" in proc.stdout, proc.stderr[-2000:]
