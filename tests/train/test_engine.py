"""The training loop's arithmetic: accumulation, schedule, periodic eval, and crash-resume of LoRA."""

import json

import pytest
import torch
from safetensors.torch import load_file

from fedem.train import FinetuneConfig, LoraSpec, ModelSpec, PretrainConfig, finetune, pretrain
from fedem.train import checkpoint as ckpt
from fedem.train.config import TrainSpec
from fedem.train.engine import lr_at, run_training

QUIET = {"progress": False, "log": lambda *_: None}


def _pretrained_weights(out, tiny_data, tiny_train, **train):
    """Pretrain the tiny model into ``out`` and return its final weights."""
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny"), data=tiny_data(), train=tiny_train(**train), output=str(out)
    )
    pretrain(cfg, **QUIET)
    return load_file(out / "model" / "model.safetensors")


def test_gradient_accumulation_equals_the_larger_batch(tiny_data, tiny_train, tmp_path):
    a = _pretrained_weights(tmp_path / "ga", tiny_data, tiny_train, steps=5, batch_size=2, grad_accum=2)
    b = _pretrained_weights(tmp_path / "big", tiny_data, tiny_train, steps=5, batch_size=4)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_schedule_warms_up_then_decays_to_the_floor():
    spec = TrainSpec(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, spec) == pytest.approx(0.1)
    assert lr_at(9, spec) == pytest.approx(1.0)
    assert lr_at(99, spec) == pytest.approx(0.1, abs=1e-3)
    lrs = [lr_at(s, spec) for s in range(10, 100)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:], strict=False))


def test_periodic_eval_is_logged_and_does_not_change_training(tiny_data, tiny_train, tmp_path):
    a = _pretrained_weights(tmp_path / "plain", tiny_data, tiny_train, steps=6)
    b = _pretrained_weights(tmp_path / "eval", tiny_data, tiny_train, steps=6, eval_every=2)
    assert all(a[k].equal(b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "eval" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "heldout_bpb" in r] == [2, 4]


def test_zero_trainable_parameters_is_refused(tiny_data, tmp_path):
    from fedem.data import build_dataset
    from fedem.model import build_model

    model = build_model("tiny")
    model.requires_grad_(False)
    with pytest.raises(RuntimeError, match="0 trainable parameters"):
        run_training(
            model,
            build_dataset(tiny_data()),
            TrainSpec(steps=1, warmup_steps=0),
            tmp_path,
            "h",
            progress=False,
            log=lambda *_: None,
        )


def test_lora_run_interrupted_then_resumed_matches_uninterrupted(
    tiny_base, tiny_data, tiny_train, tmp_path, monkeypatch
):
    def cfg(name):
        # LoRA dropout draws from the RNG every step: resume must restore the generator's state.
        return FinetuneConfig(
            base=str(tiny_base),
            data=tiny_data(),
            train=tiny_train(steps=10, save_every=3, lr=1e-2),
            lora=LoraSpec(dropout=0.1),
            output=str(tmp_path / name),
        )

    finetune(cfg("ref"), **QUIET)

    real_save = ckpt.save_checkpoint

    def save_then_crash(root, step, *args, **kwargs):
        path = real_save(root, step, *args, **kwargs)
        if step == 6:
            raise KeyboardInterrupt("simulated crash after the step-6 checkpoint")
        return path

    monkeypatch.setattr("fedem.train.engine.save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg("crash"), **QUIET)
    assert not (tmp_path / "crash" / "adapter").exists()
    monkeypatch.setattr("fedem.train.engine.save_checkpoint", real_save)
    result = finetune(cfg("crash"), resume=True, **QUIET)
    assert result.resumed_from_step == 6
    a = load_file(tmp_path / "ref" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "crash" / "adapter" / "adapter_model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_finetune_is_reproducible_whatever_ran_before(tiny_base, tiny_data, tiny_train, tmp_path):
    def run(name):
        cfg = FinetuneConfig(
            base=str(tiny_base), data=tiny_data(), train=tiny_train(steps=3), output=str(tmp_path / name)
        )
        finetune(cfg, **QUIET)
        return load_file(tmp_path / name / "adapter" / "adapter_model.safetensors")

    a = run("a")
    torch.rand(1000)  # disturb the global RNG: the adapter's init must not depend on it
    b = run("b")
    assert all(a[k].equal(b[k]) for k in a)
