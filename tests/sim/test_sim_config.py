"""The simulator's config: strict like every job config, and comparisons that change only what they name."""

from __future__ import annotations

import pytest

from fedem import config
from fedem.errors import ConfigError
from fedem.sim.config import SimConfig
from fedem.sim.run import policies

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_shipped_configs_load_and_the_demo_is_the_default():
    demo = config.load(SimConfig, REPO / "pipelines" / "simulate.yaml")
    default = SimConfig()
    # The embedded default is the demo, apart from the policies the demo compares it with.
    assert config.to_dict(demo) == {**config.to_dict(default), "compare": config.to_dict(demo.compare)}
    names = [p.name for p in policies(config.load(SimConfig, REPO / "pipelines" / "simulate-compare.yaml"))]
    assert names[0] == "relay" and len(names) == len(set(names)) > 3


def test_a_comparison_changes_only_the_fields_it_names():
    cfg = config.load(SimConfig, None, {"compare": [{"name": "strict", "set": {"gate": {"delta": 0.01}}}]})
    main, strict = policies(cfg)
    assert strict.gate.delta == 0.01 and main.gate.delta == cfg.gate.delta
    # The gate's other fields stay the run's, not GatePolicy's production defaults.
    assert strict.gate.docs_per_language == main.gate.docs_per_language == 24
    assert strict.name == "strict" and strict.compare == () and main.compare == ()


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (
            {"compare": [{"name": "x", "set": {"contributors": {"count": 0}}}]},
            "compare[x]: contributors.count",
        ),
        ({"compare": [{"name": "x", "set": {"nope": 1}}]}, "compare[x]: nope: unknown key"),
        ({"compare": [{"name": "relay"}]}, "compare: expected policy names that are unique"),
        ({"contributors": {"drop_sessions": ["c01"]}}, "drop_sessions: expected entries LOGIN@DAY"),
        ({"mode": "centralized"}, "mode: expected relay or independent"),
        ({"start": "monday"}, "start: expected an ISO-8601"),
        # A push after its lock ended would never count as a hop.
        (
            {"ttl_minutes": 60, "contributors": {"hop_minutes": 60}},
            "hop_minutes: expected less than ttl_minutes",
        ),
        # Every session of a day must be pushed before that night's 23:00 nightly.
        ({"contributors": {"count": 48}}, "the last would end at 00:02 the next day"),
        ({"contributors": {"hops_per_day": 6}}, "the last would end at 06:02 the next day"),
        # Fields that shape the world every policy shares cannot vary inside one run.
        ({"compare": [{"name": "x", "set": {"languages": ["en", "bn"]}}]}, "compare[x]: languages is shared"),
        (
            {"compare": [{"name": "x", "set": {"hop": {"block_size": 32}}}]},
            "compare[x]: hop.block_size is shared",
        ),
    ],
)
def test_bad_values_are_refused_in_one_line(overrides, needle):
    with pytest.raises(ConfigError) as err:
        policies(config.load(SimConfig, None, overrides))
    assert needle in str(err.value) and "\n" not in str(err.value)
