import subprocess
import sys

import pytest

from fedem import config as cfgio
from fedem.errors import ConfigError
from fedem.train import FinetuneConfig, PretrainConfig

PIPELINES = ["pipelines/pretrain.yaml", "pipelines/finetune.yaml", "pipelines/samanantar-pretrain.yaml"]


@pytest.mark.parametrize("path", PIPELINES)
def test_shipped_pipelines_load_and_round_trip(path, tmp_path):
    cls = FinetuneConfig if "finetune" in path else PretrainConfig
    cfg = cfgio.load(cls, path)
    cfgio.dump(cfg, tmp_path / "out.yaml")
    assert cfgio.load(cls, tmp_path / "out.yaml") == cfg
    assert cfgio.from_dict(cls, cfgio.to_dict(cfg)) == cfg


def test_overrides_win_and_are_typed():
    cfg = cfgio.load(
        PretrainConfig, "pipelines/pretrain.yaml", ["train.steps=70", "train.lr=3e-4", "model.arch=mamba"]
    )
    assert (cfg.train.steps, cfg.train.lr, cfg.model.arch) == (70, 3e-4, "mamba")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("train: {stepz: 3}", "train.stepz: unknown key"),
        ("train: {steps: many}", "train.steps: expected an integer, got 'many'"),
        ("train: {steps: 0}", "train.steps: expected an integer from 1 to 100,000,000"),
        ("train: {lr: -1}", "train.lr: expected a number in (0, 1000]"),
        (
            "train: {warmup_steps: 500, steps: 10}",
            "train.warmup_steps: expected an integer between 0 and steps",
        ),
        ("model: {arch: transformer}", "model.arch: expected one of 'mamba2', 'mamba'"),
        ("data: {sources: []}", "data.sources: expected at least one source"),
        ("data: {sources: [{embedded: hi, path: x}]}", "data.sources[0].embedded|path|dataset"),
        ("data: {block_size: true}", "data.block_size: expected an integer, got True"),
        ("[1, 2]", "expected a mapping at the top level"),
        ("train: [", "invalid YAML at line"),
        # Hostile files: bounded like every untrusted input (fedem.untrusted).
        ("a: &a [1, 1]\nb: [*a, *a]\n", "anchors and aliases are not allowed"),
        ("train: {steps: 3}\ntrain: {steps: 4}\n", "duplicate key 'train'"),
        ("x: " + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ("train: {steps: " + "9" * 400 + "}", "out of range"),
        ("train: {steps: 100000000000000000}", "train.steps: expected an integer from 1 to 100,000,000"),
        ("train: {steps: 1.0e+23}", "train.steps: expected an integer, got 1e+23"),
        ("train: {lr: .inf}", "is not finite"),
    ],
)
def test_bad_configs_name_file_key_and_expectation(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        cfgio.load(PretrainConfig, path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and expected in msg and "\n" not in msg


def test_bad_config_on_the_cli_is_one_line_exit_2_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  steps: -3\n")
    out = subprocess.run(
        [sys.executable, "-m", "fedem", "pretrain", "--config", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {path}: train.steps: expected an integer from 1 to 100,000,000"
    assert "Traceback" not in out.stderr + out.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "fedem", "finetune", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nope.yaml: file not found")


def test_bad_override_is_one_line():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        cfgio.load(PretrainConfig, None, ["train.steps"])


def test_special_files_are_refused_by_type_not_read(tmp_path):
    import os

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        with pytest.raises(ConfigError, match="not a regular file"):
            cfgio.load(PretrainConfig, path)
    big = tmp_path / "big.yaml"
    big.write_text("# x\n" * 300_000)
    with pytest.raises(ConfigError, match="exceeds the cap"):
        cfgio.load(PretrainConfig, big)


def test_a_lora_scale_that_would_overflow_is_refused(tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text("lora: {alpha: 1000000000000000000}\n")
    with pytest.raises(ConfigError, match="lora.alpha: expected an integer from 1 to 4096"):
        cfgio.load(FinetuneConfig, path)
