"""``fedem simulate``: one small real federation, end to end, on one simulated clock.

Six contributors on two languages relay ``seshu-hi`` and ``seshu-te`` for two days; c03's first
hop is abandoned after training, so its lock expires mid-relay. The nightly gates, merges and
publishes; CPT runs after each night; day 2's hops follow the new base. An independent-adapter
policy and the centralized reference run beside it. Real git, a real file:// hub, real training.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner

from fedem import config
from fedem.cli import main
from fedem.clock import parse_time
from fedem.hub.filehub import FileHub
from fedem.registry.model import adapter_path, parse_adapter
from fedem.sim.config import SimConfig
from fedem.sim.run import run_simulation, summary
from fedem.sim.world import PUBLISHER

pytestmark = pytest.mark.timeout(900)

SMALL = {
    "days": 2,
    "languages": ["hi", "te"],
    "base.steps": 40,
    "contributors.count": 6,
    "contributors.steps": 8,
    "contributors.dropout": 0.0,
    "contributors.drop_sessions": ["c03@1"],
    "gate.delta": 0.05,
    "gate.docs_per_language": 12,
    "gate.resamples": 200,
    "gate.max_length": 256,
    "cpt.every_days": 1,
    "cpt.steps": 8,
    "eval_max_docs": 8,
    "compare": [{"name": "independent", "set": {"mode": "independent"}}],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "out"
    cfg = config.load(SimConfig, None, SMALL)
    return run_simulation(cfg, out, progress=False)


def _policy(run, name):
    return next(p for p in run.metrics["policies"] if p["name"] == name)


def test_metrics_validate_against_the_published_schema(run):
    schema = json.loads((run.folder.parents[0] / "out" / "metrics.json").read_text())
    from importlib.resources import files

    spec = json.loads(files("fedem.sim").joinpath("metrics_schema.json").read_text())
    jsonschema.Draft202012Validator(spec).validate(schema)
    assert schema["schema_version"] == 1 and [p["name"] for p in schema["policies"]] == [
        "relay", "independent", "centralized",
    ]  # fmt: skip
    for name in ("report.md", "report.html", "config.yaml"):
        assert (run.folder / name).is_file()


def test_a_dropped_hop_expires_and_the_next_contributor_continues_from_the_last_push(run):
    relay = _policy(run, "relay")
    hi_locks = [lock for lock in relay["locks"] if lock["adapter"] == "seshu-hi"]
    dropped = next(lock for lock in hi_locks if lock["holder"] == "c03")
    assert dropped["end"] == "expired" and dropped["revision"] is None
    # The next Hindi contributor could claim only once c03's lock had run out (3 h after its claim).
    after = next(
        lock for lock in hi_locks if lock["holder"] == "c05" and lock["claimed"] > dropped["claimed"]
    )
    assert parse_time(after["claimed"]) >= parse_time(dropped["ended"])
    hub = FileHub(run.folder / "work" / "relay" / "hub")
    by = {r.id: r for r in hub.revisions("seshu-hi")}
    pushed = {a["revision"]: a for a in relay["adapters"] if a["adapter"] == "seshu-hi"}
    c05 = next(a for a in pushed.values() if a["contributor"] == "c05" and a["round"] == 1)
    c01 = next(a for a in pushed.values() if a["contributor"] == "c01" and a["round"] == 1)
    assert by[c05["revision"]].parent == c01["revision"], "c05 continued c01's revision, the last one pushed"
    assert not any(a["contributor"] == "c03" and a["round"] == 1 for a in pushed.values())


def test_no_pushed_revision_is_lost(run):
    relay = _policy(run, "relay")
    hub = FileHub(run.folder / "work" / "relay" / "hub")
    remote = run.folder / "work" / "relay" / "git" / "remote.git"
    import subprocess

    for name in ("seshu-hi", "seshu-te"):
        on_hub = {r.id for r in hub.revisions(name)}
        text = subprocess.run(
            ["git", "show", f"registry:{adapter_path(name)}"],
            cwd=remote,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        hops = {h.revision for h in parse_adapter(text, adapter_path(name)).hops}
        mine = {a["revision"] for a in relay["adapters"] if a["adapter"] == name}
        assert mine and mine == on_hub == hops, name


def test_relayed_hops_end_up_merged_in_a_published_checkpoint_and_hops_follow_it(run):
    relay = _policy(run, "relay")
    merges = [c for c in relay["checkpoints"] if c["relation"] == "merge"]
    assert merges and merges[0]["round"] == 1
    merged_hops = {h for m in merges[0]["merged"] for h in m["hops"]}
    day1 = {a["revision"] for a in relay["adapters"] if a["round"] == 1}
    assert day1 <= merged_hops, "every day-1 hop that was pushed is in the first merge"
    assert all(c["tag"].startswith("seshu-2026120") for c in relay["checkpoints"][1:])
    day2 = [a for a in relay["adapters"] if a["round"] == 2]
    firsts = {a["adapter"]: a for a in reversed(day2)}  # each adapter's first hop of day 2
    assert day2 and all(a["follow"] in ("reset", "rebased") for a in firsts.values()), firsts
    assert all(a["base"] != relay["checkpoints"][0]["revision"] for a in day2)
    gate = [g for g in relay["gate"] if g["night"] == 1]
    assert {g["verdict"] for g in gate} == {"accept"} and all(g["delta"] for g in gate)
    # Credit counts each contributor's pushed hops and those a published merge folded in.
    merged_all = {h for c in relay["checkpoints"] for m in c["merged"] for h in m["hops"]}
    for row in relay["credit"]:
        mine = [a["revision"] for a in relay["adapters"] if a["contributor"] == row["contributor"]]
        assert row["hops"] == len(mine) and row["merged_hops"] == len(set(mine) & merged_all), row
    assert not any(a["contributor"] == "c03" and a["round"] == 1 for a in relay["adapters"])
    # Published by the maintainer account; the root stays the chain's first revision.
    hub = FileHub(run.folder / "work" / "relay" / "hub")
    chain = hub.revisions("seshu")
    assert chain[-1].id == relay["checkpoints"][0]["revision"] and chain[0].author == PUBLISHER


def test_the_reference_spends_the_same_tokens_and_the_comparison_is_per_language(run):
    relay, central = _policy(run, "relay"), _policy(run, "centralized")
    assert central["tokens_trained"] == relay["tokens_trained"] > 0
    rows = [r for r in run.metrics["comparison"] if r["policy"] == "relay"]
    assert [r["language"] for r in rows] == ["hi", "te"]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["bpb"] / r["reference"], abs=1e-4)
        assert r["bpb"] == relay["rounds"][-1]["bpb"][r["language"]]
    independent = _policy(run, "independent")
    assert {a["adapter"] for a in independent["adapters"]} <= {f"seshu-c0{i}" for i in range(1, 7)}
    text = summary(run)
    assert "vs centralized" in text and "report.html" in text and len(text.splitlines()) <= 30


def test_bad_config_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["simulate", "--set", "contributors.count=0", "--output", str(out)])
    assert result.exit_code == 2 and "contributors.count" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["simulate", "--output", str(tmp_path / "full")])
    assert result.exit_code == 2 and "not empty" in result.output
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
