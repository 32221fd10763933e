"""Smoke test: run cpt.yml with `act` on this host, the GPU labels mapped to it, as a dry run.

The workflow runs the runner's own venv (``vars.FEDEM_GPU_VENV``): here, this test's venv. Its
checkout is the tiny stand-in of tests/registry/test_act.py (act has copied the workspace),
and the workspace is a scratch repo holding the workflow, a tiny ``pipelines/cpt.yaml`` and a
link to this checkout's ``fedem`` package (the workflow puts the workspace on PYTHONPATH, as
on the runner). The hub is a file:// hub holding a tiny root checkpoint. A dry run writes
nothing: the hub and the workspace are checked unchanged. ``--no-cache-server`` always (BRIEF §6).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from registry._helpers import GIT_ENV, REPO_ROOT, act_dispatch_on_gpu_labels, git

from fedem import config as cfgio
from fedem.hub.filehub import FileHub
from fedem.publish import publish_root

from .conftest import cpt_config


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
    work, hub = workspace
    before = (hub.revisions("seshu"), git(work, "status", "--porcelain", "--ignored"))
    proc = act_dispatch_on_gpu_labels(
        work,
        "cpt.yml",
        tmp_path,
        inputs={"dry-run": "true"},
        variables={"FEDEM_CHECKPOINT_HUB": hub.url},
        env={"FEDEM_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0 and "Job succeeded" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "dry run: would train 3 steps from seshu@" in proc.stdout
    assert (
        "embedded:te" in proc.stdout and "No broken requirements found" in proc.stdout
    )  # the venv check ran
    assert (hub.revisions("seshu"), git(work, "status", "--porcelain", "--ignored")) == before
    assert not (tmp_path / "cache").exists(), "a dry run pulls nothing"
