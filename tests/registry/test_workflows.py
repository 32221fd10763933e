"""The registry's GitHub workflows: offline linters find nothing, and the security rules hold."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ._helpers import NODE24_PINS, REPO_ROOT, find_tool

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
REQUIREMENTS = REPO_ROOT / ".github" / "requirements-registry.txt"
FILES = [WORKFLOWS / n for n in ("reconcile.yml", "claim.yml", "ci.yml", "cpt.yml", "nightly.yml")]
ACTIONLINT_CONFIG = REPO_ROOT / ".github" / "actionlint.yaml"
# Events through which a pull request (or a workflow a pull request started) can run a job.
PR_EVENTS = {
    "pull_request",
    "pull_request_target",
    "pull_request_review",
    "pull_request_review_comment",
    "issue_comment",
    "workflow_run",
}
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def workflow_pins() -> set[str]:
    """Every ``uses:`` of every workflow (the act test maps these same pins to local stand-ins)."""
    return {
        step["uses"]
        for path in FILES
        for job in _load(path)["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    }


tool = find_tool


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_actions_are_pinned_to_node24_releases():
    assert workflow_pins() == NODE24_PINS


def test_jactionlint_finds_nothing():
    proc = subprocess.run(
        [tool("jactionlint"), "--no-hints", *map(str, FILES)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_offline_finds_nothing():
    proc = subprocess.run([tool("zizmor"), "--offline", str(WORKFLOWS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout


def test_workflow_schema():
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_security_rules(path):
    wf = _load(path)
    assert wf["permissions"] == {}, "no permissions at the top; each job asks for its own"
    for name, job in wf["jobs"].items():
        assert "permissions" in job, name
        if "self-hosted" in str(job["runs-on"]):  # a GPU runner: never reachable from a pull request
            assert not set(wf["on"]) & PR_EVENTS, f"{name}: self-hosted job on {set(wf['on']) & PR_EVENTS}"
        for step in job["steps"]:
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), step["uses"]
            assert "${{" not in step.get("run", ""), f"{name}: event fields reach run: only through env:"
    text = path.read_text()
    for line in text.splitlines():
        if "uses:" in line:
            assert re.search(r"# v\d+\.\d+\.\d+$", line), line


def test_reconcile_workflow_shape():
    wf = _load(WORKFLOWS / "reconcile.yml")
    assert wf["on"]["schedule"] == [{"cron": "*/5 * * * *"}] and "workflow_dispatch" in wf["on"]
    assert "group" in wf["concurrency"]
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"contents": "write"}
    assert "fedem registry reconcile" in job["steps"][-1]["run"]


def test_cpt_workflow_shape():
    wf = _load(WORKFLOWS / "cpt.yml")
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}, "never a pull request event"
    ((cron,),) = [[s["cron"] for s in wf["on"]["schedule"]]]
    minute, hour, day, month, weekday = cron.split()
    assert (day, month, weekday) == ("1", "*", "*"), "monthly"
    assert wf["on"]["workflow_dispatch"]["inputs"]["dry-run"]["type"] == "boolean"
    assert wf["concurrency"] == {"group": "seshu-checkpoints", "cancel-in-progress": False}
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "linux", "x64", "gpu"]
    assert job["permissions"] == {"contents": "read"}
    lines = [
        ln for s in job["steps"] for ln in s.get("run", "").splitlines() if "fedem" in ln and " cpt " in ln
    ]
    assert len(lines) == 1 and "-m fedem cpt --config" in lines[0], "exactly one fedem cpt line"
    step = next(s for s in job["steps"] if "fedem cpt" in s.get("run", ""))
    assert step["env"]["HF_TOKEN"] == "${{ secrets.HF_CHECKPOINT_TOKEN }}"
    assert not any("pip install" in s.get("run", "") for s in job["steps"]), (
        "the write-token job installs nothing"
    )


def test_nightly_workflow_shape():
    wf = _load(WORKFLOWS / "nightly.yml")
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}, "never a pull request event"
    ((cron,),) = [[s["cron"] for s in wf["on"]["schedule"]]]
    assert cron.split()[2:] == ["*", "*", "*"], "daily"
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert inputs["dry-run"]["type"] == "boolean" and inputs["method"]["type"] == "string"
    assert wf["concurrency"] == _load(WORKFLOWS / "cpt.yml")["concurrency"], "one group shared with CPT"
    assert wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "linux", "x64", "gpu"]
    assert job["permissions"] == {"contents": "write"}, "the registry marks, nothing else"
    lines = [ln for s in job["steps"] for ln in s.get("run", "").splitlines() if "-m fedem " in ln]
    assert len(lines) == 1 and "-m fedem nightly --config" in lines[0], "exactly one fedem line"
    step = next(s for s in job["steps"] if "fedem nightly" in s.get("run", ""))
    assert step["env"]["HF_TOKEN"] == "${{ secrets.HF_CHECKPOINT_TOKEN }}"
    assert step["env"]["FEDEM_GATE_SALT"] == "${{ secrets.FEDEM_GATE_SALT }}"
    assert "${{" not in step["run"], "inputs and secrets reach the script only through env:"
    assert not any("pip install" in s.get("run", "") for s in job["steps"]), "installs nothing"


def _labels(job: dict) -> list[str]:
    runs_on = job["runs-on"]
    return [runs_on] if isinstance(runs_on, str) else list(runs_on)


def test_runner_labels_are_declared_and_jactionlint_enforces_the_list(tmp_path):
    """Every label a workflow uses is in .github/actionlint.yaml, and jactionlint reads that file:
    with it, an undeclared label fails (strict-labels); without it, the same typo passes."""
    config = yaml.safe_load(ACTIONLINT_CONFIG.read_text())
    declared = set(config["self-hosted-runner"]["labels"])
    assert config["self-hosted-runner"]["strict-labels"] is True
    for path in FILES:
        for job in _load(path)["jobs"].values():
            assert set(_labels(job)) <= declared, (path.name, _labels(job))
    typo = (WORKFLOWS / "cpt.yml").read_text().replace("x64, gpu]", "x64, gpus]")
    assert "gpus]" in typo
    for with_config in (True, False):
        root = tmp_path / str(with_config)
        (root / ".github" / "workflows").mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(root)], check=True)  # the config is found at the repo root
        (root / ".github" / "workflows" / "cpt.yml").write_text(typo)
        if with_config:
            (root / ".github" / "actionlint.yaml").write_text(ACTIONLINT_CONFIG.read_text())
        proc = subprocess.run(
            [tool("jactionlint"), "--no-hints", str(root / ".github" / "workflows" / "cpt.yml")],
            capture_output=True,
            text=True,
            cwd=root,
        )
        if with_config:
            assert proc.returncode != 0 and 'label "gpus" is not allowed' in proc.stdout, proc.stdout
        else:
            assert proc.returncode == 0, proc.stdout + proc.stderr


def test_claim_workflow_never_touches_pr_code():
    wf = _load(WORKFLOWS / "claim.yml")
    assert list(wf["on"]) == ["pull_request_target"] and wf["on"]["pull_request_target"]["branches"] == [
        "registry"
    ]
    (job,) = wf["jobs"].values()
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert "head" not in str(checkout.get("with", {})) and "pull_request" not in str(checkout.get("with", {}))
    assert checkout["with"]["persist-credentials"] is False
    env = next(s for s in job["steps"] if "check-claim" in s.get("run", ""))["env"]
    assert env["PR_AUTHOR"] == "${{ github.event.pull_request.user.login }}"
    assert '--author "${PR_AUTHOR}"' in next(
        s["run"] for s in job["steps"] if "check-claim" in s.get("run", "")
    )


def test_ci_runs_make_lint_and_test():
    wf = _load(WORKFLOWS / "ci.yml")
    assert {"push", "pull_request"} <= set(wf["on"])
    runs = [s.get("run") for job in wf["jobs"].values() for s in job["steps"]]
    assert "make lint" in runs and "make test" in runs


@pytest.mark.parametrize("name, command", [("reconcile.yml", "reconcile"), ("claim.yml", "check-claim")])
def test_hub_readers_get_the_hf_token_through_env(name, command):
    """The step that reads the hub gets HF_TOKEN from the secrets, in env: only."""
    (job,) = _load(WORKFLOWS / name)["jobs"].values()
    step = next(s for s in job["steps"] if f"fedem registry {command}" in s.get("run", ""))
    assert step["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert "FEDEM_HUB" in step["env"] and "secrets." not in step["run"]


def _pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of the registry workflows' requirements file."""
    text = re.sub(r"\\\n", " ", REQUIREMENTS.read_text())
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert m, f"not an exact, hashed pin: {line[:80]!r}"
        name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        pins[name] = (m.group(2), re.findall(r"sha256:([0-9a-f]{64})", m.group(3)))
    return pins


def test_registry_requirements_are_exact_and_hashed():
    pins = _pins()
    assert {"pyyaml", "click", "huggingface-hub"} <= set(pins)
    # The closure is complete: what each pinned package needs on CPython 3.11 / Linux is pinned
    # too. Checked from the metadata installed here, for the pins this venv happens to match
    # (pip's --require-hashes refuses an incomplete closure on the runner in any case).
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = {**default_environment(), "python_version": "3.11", "sys_platform": "linux", "extra": ""}
    for name, (version, _) in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        for raw in dist.requires or ():
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate(env):
                dep = re.sub(r"[-_.]+", "-", req.name).lower()
                assert dep in pins, f"{name}=={version} needs {dep}, which is not pinned"
                assert req.specifier.contains(pins[dep][0], prereleases=True), (name, raw, pins[dep][0])


@pytest.mark.parametrize("name", ["reconcile.yml", "claim.yml"])
def test_write_token_jobs_install_only_hashed_pins(name):
    (job,) = _load(WORKFLOWS / name)["jobs"].values()
    installs = [s for s in job["steps"] if "pip" in s.get("run", "")]
    assert len(installs) == 1
    cmd = " ".join(installs[0]["run"].replace("\\\n", " ").split())
    assert cmd == (
        "python -m pip install --quiet --require-hashes --only-binary=:all: -r .github/requirements-registry.txt"
    )
    assert installs[0]["if"] == "${{ !env.ACT }}", "skipped only under act, which never sets it on GitHub"


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_dev_tool_fails_under_ci(monkeypatch, ci, outcome):
    """The linter and act tests skip on a bare machine but fail under CI=true, never pass silently."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as err:  # a skip escaping here would itself skip this test
        tool("no-such-linter")
    assert err.type is outcome and "no-such-linter is not installed" in str(err.value)
