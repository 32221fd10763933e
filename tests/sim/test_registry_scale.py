"""The registry at scale, small: real check-claim jobs racing on a real bare remote keep every
lock (no double, no lost), the invariant checker catches planted ones, and the report and CLI
say so. Outcomes never depend on the wall clock: the workload and its simulated times come
from the seed, and the invariants must hold however the races fall."""

from __future__ import annotations

import json
import random
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedem.cli import main
from fedem.clock import format_time, parse_time
from fedem.config import from_dict
from fedem.errors import ConfigError
from fedem.sim.registry_check import Hold, HoldTally, check_history
from fedem.sim.registry_config import RegistrySimConfig
from fedem.sim.registry_scale import run_registry_scale, summary
from fedem.sim.registry_world import build_world, jobs
from fedem.sim.stats import LogHistogram

# Small, but every rule gets exercised: 3 popular adapters take half the claims (collisions
# within one job's length and claims on held adapters), a 20-minute TTL expires locks, half
# the holders publish (hops), and 6 runners run overlapping jobs at once.
SMALL = dict(
    adapters=30, contributors=12, claims_per_hour=300, hours=0.5, concurrency=6, job_seconds=60,
    hot_adapters=3, hot_fraction=0.5, ttl_minutes=20, cooldown_minutes=10, publish_fraction=0.5, seed=7,
)  # fmt: skip


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    try:
        yield run_registry_scale(
            RegistrySimConfig(**SMALL), tmp_path_factory.mktemp("sim") / "out", progress=False
        )
    finally:
        mp.undo()


def test_racing_claim_jobs_keep_every_lock(small_run):
    m, inv = small_run.metrics, small_run.invariants
    assert inv.ok and (inv.double_locks, inv.lost_locks, inv.over_cap, inv.bad_ends) == (0, 0, 0, 0)
    assert m["claims"]["errors"] == 0 and m["reconcile"]["failed"] == 0, m["errors"]
    assert m["concurrency"]["max_parallel_jobs"] > 1, "jobs overlapping in simulated time run at once"
    c = m["claims"]
    assert c["jobs"] == c["accepted"] + c["rejected"] + c["gave_up"] > 100
    assert c["rejected_by_rule"]["held"] > 0, "colliding claims must be refused by the real code"
    assert m["reconcile"]["hops"] > 0 and m["reconcile"]["expired"] > 0
    assert inv.holds_seen == inv.claims_accepted == c["accepted"]
    assert m["latency_s"]["p50"] >= SMALL["job_seconds"]


def test_report_files_and_fields(small_run):
    out = small_run.out_dir
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(small_run.metrics))
    for key in ("claims", "latency_s", "check_claim_wall_s", "cas", "reconcile", "invariants", "wall"):
        assert key in metrics, key
    assert {"p50", "p99"} <= metrics["latency_s"].keys() and {"p50", "max"} <= metrics["reconcile"][
        "wall_s"
    ].keys()
    assert {"retries", "retry_rate"} <= metrics["cas"].keys()
    assert (metrics["invariants"]["double_locks"], metrics["invariants"]["lost_locks"]) == (0, 0)
    assert "concurrency: 6" in (out / "config.yaml").read_text()
    table = summary(small_run)
    assert "double locks" in table and "lost locks" in table and "claim-to-lock latency" in table


def test_workload_is_seeded_and_respects_the_runners(tmp_path):
    cfg = RegistrySimConfig(**{**SMALL, "claims_per_hour": 2000})
    world = build_world(RegistrySimConfig(adapters=30, contributors=12), tmp_path / "w")
    a, b = list(jobs(cfg, world)), list(jobs(cfg, world))
    assert a == b and len(a) > 500
    assert all(x.stamped <= y.stamped for x, y in zip(a, a[1:], strict=False))
    assert all(j.stamped - j.started >= timedelta(seconds=cfg.job_seconds) for j in a)
    # Never more jobs running at one instant than runners.
    edges = sorted(
        [(j.started, 1) for j in a] + [(j.started + timedelta(seconds=cfg.job_seconds), -1) for j in a]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == cfg.concurrency


# -- the checker can fail -------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout


def _adapter(
    name: str, holder: str | None = None, since=None, ttl_min: int = 180, previous: str = "null"
) -> str:
    lock = "  holder: null\n  since: null\n  until: null\n  claim: null\n"
    if holder:
        until = format_time(since + timedelta(minutes=ttl_min))
        lock = f"  holder: {holder}\n  since: '{format_time(since)}'\n  until: '{until}'\n  claim: '#1'\n"
    spec = "spec:\n  base_model: b\n  targets: [in_proj]\n  rank: 16\n"
    return f"name: {name}\n{spec}lock:\n{lock}previous: {previous}\nhops: []\n"


def _commit(work: Path, files: dict[str, str], msg: str) -> None:
    for name, text in files.items():
        (work / "registry" / "adapters" / f"{name}.yaml").write_text(text)
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", msg)
    _git(work, "push", "-q", "origin", "HEAD:registry")


@pytest.fixture
def planted(tmp_path):
    world = build_world(RegistrySimConfig(adapters=4, contributors=4, hot_adapters=1), tmp_path / "w")
    work = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "-b", "registry", str(world.remote), str(work))
    return world, work, parse_time("2026-12-01T01:00:00Z")


def test_checker_passes_a_clean_history(planted):
    world, work, t = planted
    _commit(work, {"a0": _adapter("a0", "c0001", t)}, "claim")
    prev = f"{{holder: c0001, since: '{format_time(t)}', ended: '{format_time(t + timedelta(hours=3))}', reason: expired}}"
    _commit(work, {"a0": _adapter("a0", "c0002", t + timedelta(hours=4), previous=prev)}, "expire and claim")
    tally = HoldTally()
    tally.add(Hold("a0", "c0001", t))
    tally.add(Hold("a0", "c0002", t + timedelta(hours=4)))
    report = check_history(world.remote, tally, max_holds=1)
    assert report.ok and report.holds_seen == 2, report.examples


def test_checker_catches_a_planted_double_lock_and_a_planted_lost_lock(planted, tmp_path):
    world, work, t = planted
    _commit(work, {"a0": _adapter("a0", "c0001", t), "a1": _adapter("a1", "c0002", t)}, "two claims")
    # Another holder written over a live lock, and a lock gone free with no end recorded.
    _commit(work, {"a0": _adapter("a0", "c0003", t + timedelta(hours=1))}, "double")
    _commit(work, {"a1": _adapter("a1")}, "lost")
    tally = HoldTally()
    for hold in (Hold("a0", "c0001", t), Hold("a1", "c0002", t), Hold("a0", "c0003", t + timedelta(hours=1))):
        tally.add(hold)
    report = check_history(world.remote, tally, max_holds=1)
    assert (report.double_locks, report.lost_locks) == (1, 1) and not report.ok
    assert any("c0003 took a0 held by c0001" in e for e in report.examples)
    assert any("a1: the lock of c0002" in e for e in report.examples)


def test_checker_catches_an_accepted_claim_missing_from_the_branch(planted, tmp_path):
    world, work, t = planted
    _commit(work, {"a0": _adapter("a0", "c0001", t)}, "claim")
    log = tmp_path / "accepted.jsonl"
    tally = HoldTally()
    for name, who in (("a0", "c0001"), ("a2", "c0002")):  # a2's accepted claim never reached the branch
        tally.add(Hold(name, who, t))
    log.write_text(
        "".join(
            json.dumps({"adapter": n, "holder": w, "since": format_time(t)}) + "\n"
            for n, w in (("a0", "c0001"), ("a2", "c0002"))
        )
    )
    report = check_history(world.remote, tally, max_holds=1, claim_log=log)
    assert report.lost_locks == 1 and report.double_locks == 0
    assert "accepted claim of a2 by c0002" in report.examples[0]


def test_checker_catches_a_login_over_its_cap(planted):
    world, work, t = planted
    _commit(
        work,
        {"a0": _adapter("a0", "c0001", t), "a1": _adapter("a1", "c0001", t + timedelta(minutes=1))},
        "two",
    )
    tally = HoldTally()
    tally.add(Hold("a0", "c0001", t))
    tally.add(Hold("a1", "c0001", t + timedelta(minutes=1)))
    report = check_history(world.remote, tally, max_holds=1)
    assert report.over_cap == 1 and not report.ok


# -- the command line and the config ---------------------------------------------------------------
TINY = [
    "--adapters",
    "10",
    "--contributors",
    "5",
    "--claims-per-hour",
    "120",
    "--hours",
    "0.25",
    "--concurrency",
    "3",
]


def test_cli_prints_the_summary_and_exits_0(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["simulate", "--registry-only", *TINY, "--no-progress", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "double locks" in result.output and "lost locks" in result.output
    assert json.loads((out / "metrics.json").read_text())["invariants"]["ok"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--registry-only", "--concurrency", "0"],
            "error: config: concurrency: expected an integer from 1 to 256, got 0",
        ),
        (
            ["--registry-only", "--set", "publish_fraction=2"],
            "error: config: publish_fraction: expected a number from 0 to 1",
        ),
        (
            ["--registry-only", "--set", "ttl_minutes=0"],
            "error: config: ttl_minutes: expected an integer from 1 to 10080",
        ),
        (
            ["--registry-only", "--config", "x.yaml"],
            "error: --config is the federation's; --registry-only takes its sizes as flags",
        ),
        (["--hours", "2"], "error: --hours applies to --registry-only"),
    ],
)
def test_bad_config_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["simulate", *args, "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert not (tmp_path / "o").exists()


def test_config_rejects_unknown_keys_and_impossible_values():
    with pytest.raises(ConfigError, match="start: expected an ISO-8601 UTC time"):
        from_dict(RegistrySimConfig, {"start": "yesterday"})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(RegistrySimConfig, {"adaptors": 10})


def test_log_histogram_quantiles_within_one_percent():
    rng = random.Random(1)
    values = [rng.lognormvariate(0, 2) for _ in range(20_000)]
    h = LogHistogram()
    for v in values:
        h.add(v)
    values.sort()
    for q in (0.5, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert abs(h.quantile(q) / exact - 1) < 0.011
    assert h.quantile(1.0) == max(values) and len(h.bins) < 3000
