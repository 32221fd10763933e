"""A run that diverges stops with the step named, and saves nothing (no model, no checkpoint)."""

from __future__ import annotations

import pytest

from fedem.train import ModelSpec, PretrainConfig, pretrain
from fedem.train.engine import NonFiniteError


def test_diverging_run_names_the_step_and_saves_nothing(tmp_path, tiny_data, tiny_train):
    # A learning rate that overflows: the first update blows the weights up, the next loss is not finite.
    out = tmp_path / "run"
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny"),
        data=tiny_data(),
        train=tiny_train(steps=6, lr=100.0, warmup_steps=0, grad_clip=0.0, log_every=3, save_every=1),
        output=str(out),
    )
    with pytest.raises(NonFiniteError) as err:
        pretrain(cfg, progress=False, log=lambda *_: None)
    message = str(err.value)
    assert "\n" not in message and "not finite at step " in message and "nothing was saved" in message
    step = int(message.split("not finite at step ")[1].split()[0])
    assert 1 <= step <= 3
    assert not (out / "model").exists()
    # A checkpoint is written only while every loss so far was finite.
    saved = sorted(p.name for p in (out / "checkpoints").iterdir()) if (out / "checkpoints").exists() else []
    assert all(int(name.split("-")[-1]) < step for name in saved), saved
