"""``fedem merge`` and ``pipelines/merge.yaml``: flags, config and overrides reach the merge."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fedem import config as cfgio
from fedem.cli import main
from fedem.merge import MergeConfig, MergeSpec

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "merge.yaml"


def test_pipeline_config_loads_and_round_trips(tmp_path):
    cfg = cfgio.load(MergeConfig, PIPELINE)
    assert cfg.merge == MergeSpec() and cfg.adapters == ("runs/demo/adapter",)
    cfgio.dump(cfg, tmp_path / "again.yaml")
    assert cfgio.load(MergeConfig, tmp_path / "again.yaml") == cfg


def test_cli_merges_with_flags_over_config(base, adapters, tmp_path):
    out = tmp_path / "merged"
    args = ["merge", "--config", str(PIPELINE), str(base.dir), *map(str, adapters[:2])]
    args += ["--method", "dare_linear", "--weights", "0.5,2", "--density", "0.7", "--seed", "4"]
    args += ["--set", "merge.lambda_=0.5", "--output", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("merged 2 tensors from 2 adapters (dare_linear)")
    rec = json.loads((out / "fedem.json").read_text())["merge"]
    assert (rec["method"], rec["weights"], rec["density"], rec["seed"], rec["lambda"]) == (
        "dare_linear",
        [0.5, 2.0],
        0.7,
        4,
        0.5,
    )
    assert [a["name"] for a in json.loads((out / "fedem.json").read_text())["adapters"]] == ["a0", "a1"]


def test_revisions_are_recorded_and_must_match_the_adapters(base, adapters, tmp_path):
    import pytest

    from fedem.errors import ConfigError
    from fedem.merge import run

    data = {"base": str(base.dir), "adapters": [str(a) for a in adapters[:2]], "output": str(tmp_path / "m")}
    with pytest.raises(ConfigError, match="revisions: expected one per adapter"):
        cfgio.load(MergeConfig, None, {**data, "revisions": ["abc"]})
    run(cfgio.load(MergeConfig, None, {**data, "revisions": ["abc", None]}))
    recorded = json.loads((tmp_path / "m" / "fedem.json").read_text())["adapters"]
    assert [a["revision"] for a in recorded] == ["abc", None]
