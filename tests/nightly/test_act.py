"""Smoke test: run nightly.yml with `act` on this host, the GPU labels mapped to it, as a dry run.

As tests/cpt/test_act.py: the runner's venv is this test's, the workspace a scratch repo with
the workflow, a small ``pipelines/nightly.yaml`` and a link to this checkout's ``fedem``. The
hub holds a tiny root checkpoint and the registry no hop yet: the night reads both, says there
is nothing new, and hub, registry and workspace are checked unchanged.
"""

from __future__ import annotations

import shutil

from registry._helpers import (
    GIT_ENV,
    REPO_ROOT,
    act_dispatch_on_gpu_labels,
    git,
    remote_log,
)

from fedem.hub.filehub import FileHub
from fedem.publish import publish_root


def test_act_runs_a_nightly_dry_run_on_the_gpu_labels(tmp_path, tiny_base, make_remote, monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    hub = FileHub(tmp_path / "hub")
    hub.init()
    root = publish_root(hub, tiny_base).revision.id
    remote = make_remote()
    work = tmp_path / "work"
    (work / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".github" / "workflows" / "nightly.yml", work / ".github" / "workflows")
    (work / "pipelines").mkdir()
    (work / "pipelines" / "nightly.yaml").write_text("gate:\n  languages: [en, hi, te]\n")
    (work / "fedem").symlink_to(REPO_ROOT / "fedem", target_is_directory=True)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "workflow")
    before = (hub.revisions("seshu"), remote_log(remote), git(work, "status", "--porcelain", "--ignored"))
    proc = act_dispatch_on_gpu_labels(
        work,
        "nightly.yml",
        tmp_path,
        inputs={"dry-run": "true", "method": "ties"},
        variables={"FEDEM_CHECKPOINT_HUB": hub.url, "FEDEM_REGISTRY_REMOTE": str(remote)},
        env={"FEDEM_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0 and "Job succeeded" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"checkpoint seshu@{root[:12]}" in proc.stdout and "nothing new" in proc.stdout
    assert "No broken requirements found" in proc.stdout  # the venv check ran
    after = (hub.revisions("seshu"), remote_log(remote), git(work, "status", "--porcelain", "--ignored"))
    assert after == before
