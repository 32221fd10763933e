"""pipelines/cpt.yaml: loads strictly, round-trips, and continues what samanantar-pretrain.yaml trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedem import config as cfgio
from fedem.cpt import CptConfig
from fedem.errors import ConfigError
from fedem.train import PretrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_loads_round_trips_and_takes_overrides(tmp_path):
    cfg = cfgio.load(CptConfig, ROOT / "pipelines" / "cpt.yaml", ["train.steps=300", "eval.delta=0.02"])
    assert (cfg.train.steps, cfg.eval.delta, cfg.repo) == (300, 0.02, "seshu")
    cfgio.dump(cfg, tmp_path / "out.yaml")
    assert cfgio.load(CptConfig, tmp_path / "out.yaml") == cfg


def test_its_data_is_the_roots_so_the_cursor_applies():
    """Same source names, block size and held-out split as the real pretraining job."""
    cpt = cfgio.load(CptConfig, ROOT / "pipelines" / "cpt.yaml")
    root = cfgio.load(PretrainConfig, ROOT / "pipelines" / "samanantar-pretrain.yaml")
    assert [s.name for s in cpt.data.sources] == [s.name for s in root.data.sources]
    assert (cpt.data.block_size, cpt.data.heldout_fraction) == (
        root.data.block_size,
        root.data.heldout_fraction,
    )


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["eval.sources=[]"], "eval.sources: expected at least one held-out source"),
        (["eval.max_blocks=0"], "eval.max_blocks: expected an integer from 1"),
        (["author=a\tb"], "author: expected a short one-line name"),
        (["train.stepz=3"], "train.stepz: unknown key"),
    ],
)
def test_bad_values_name_the_file_and_the_key(sets, needle):
    with pytest.raises(ConfigError) as err:
        cfgio.load(CptConfig, ROOT / "pipelines" / "cpt.yaml", sets)
    assert str(err.value).startswith(f"{ROOT / 'pipelines' / 'cpt.yaml'}: ") and needle in str(err.value)
