"""A run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from fedem import config as cfgio
from fedem.train import ModelSpec, PretrainConfig, pretrain

STEPS = 24


def _cfg(tiny_data, tiny_train, out, **train):
    return PretrainConfig(
        model=ModelSpec(preset="tiny"),
        data=tiny_data(),
        train=tiny_train(**{"steps": STEPS, "save_every": 4, **train}),
        output=str(out),
    )


def _run_cli(cfg_path, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "fedem", "pretrain", "--config", str(cfg_path), "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_kill_9_then_resume_matches_an_uninterrupted_run(tiny_data, tiny_train, tmp_path):
    # Reference: uninterrupted, in a subprocess with the same thread count as the killed run.
    ref_cfg = _cfg(tiny_data, tiny_train, tmp_path / "ref")
    cfgio.dump(ref_cfg, tmp_path / "ref.yaml")
    assert _run_cli(tmp_path / "ref.yaml").wait(timeout=240) == 0

    cfg = _cfg(tiny_data, tiny_train, tmp_path / "killed")
    cfgio.dump(cfg, tmp_path / "killed.yaml")
    proc = _run_cli(tmp_path / "killed.yaml")
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 180
    while not (ckpts.is_dir() and any(p.name >= "step-00000008" for p in ckpts.glob("step-*"))):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model").exists(), "killed too late: the run had finished"

    resumed = _run_cli(tmp_path / "killed.yaml", "--resume")
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    assert "resuming from" in out
    a = load_file(tmp_path / "ref" / "model" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-6, f"max abs difference {diff}"
    assert not (tmp_path / "killed" / "checkpoints").exists(), "checkpoints are removed after success"


def test_resume_refuses_a_changed_config(tiny_data, tiny_train, tmp_path):
    cfg = _cfg(tiny_data, tiny_train, tmp_path / "r", keep_checkpoints=True)
    cfg = cfgio.replace(cfg, train=cfgio.replace(cfg.train, steps=8))
    pretrain(cfg, progress=False, log=lambda *_: None)
    # a finished run is never overwritten
    with pytest.raises(Exception, match="already holds a finished run"):
        pretrain(cfg, resume=True, progress=False, log=lambda *_: None)


def test_output_folder_is_not_clobbered_without_resume(tiny_data, tiny_train, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cfg = _cfg(tiny_data, tiny_train, tmp_path / "busy")
    with pytest.raises(Exception, match="not empty; pass --resume"):
        pretrain(cfg, progress=False, log=lambda *_: None)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_checkpoint_from_another_config_is_refused(tiny_data, tiny_train, tmp_path):
    import shutil

    from fedem.train.checkpoint import list_checkpoints

    cfg = _cfg(tiny_data, tiny_train, tmp_path / "c", keep_checkpoints=True)
    cfg = cfgio.replace(cfg, train=cfgio.replace(cfg.train, steps=9))
    pretrain(cfg, progress=False, log=lambda *_: None)
    assert list_checkpoints(tmp_path / "c" / "checkpoints")
    shutil.rmtree(tmp_path / "c" / "model")
    other = cfgio.replace(cfg, train=cfgio.replace(cfg.train, lr=1e-4))
    with pytest.raises(Exception, match="different config"):
        pretrain(other, resume=True, progress=False, log=lambda *_: None)
