"""Continuous pretraining: a run continues from an existing model's weights, never from scratch."""

import json

import pytest
from safetensors.torch import load_file

from fedem.errors import ModelError
from fedem.train import ModelSpec, PretrainConfig, pretrain


def test_cpt_starts_from_the_base_weights_and_records_its_hash(tiny_base, tiny_data, tiny_train, tmp_path):
    base_prov = json.loads((tiny_base / "model" / "fedem.json").read_text())
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny", init=str(tiny_base)),
        data=tiny_data(),
        train=tiny_train(steps=4),
        output=str(tmp_path / "cpt"),
    )
    result = pretrain(cfg, progress=False, log=lambda *_: None)
    # Same data, same held-out blocks: the CPT run's "before" is exactly the base's "after".
    assert result.bpb_before == pytest.approx(base_prov["metrics"]["bpb_after"], abs=1e-5)
    prov = json.loads((tmp_path / "cpt" / "model" / "fedem.json").read_text())
    assert prov["init_sha256"] == base_prov["weights_sha256"]
    a = load_file(tiny_base / "model" / "model.safetensors")
    b = load_file(tmp_path / "cpt" / "model" / "model.safetensors")
    assert any(not a[k].equal(b[k]) for k in a), "CPT must train"
    assert (tiny_base / "model" / "fedem.json").read_text() == json.dumps(
        base_prov, indent=2, sort_keys=True, ensure_ascii=False
    ) + "\n"


def test_cpt_refuses_an_architecture_mismatch(tiny_base, tiny_data, tiny_train, tmp_path):
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny", arch="mamba", init=str(tiny_base)),
        data=tiny_data(),
        train=tiny_train(steps=2),
        output=str(tmp_path / "cpt"),
    )
    with pytest.raises(ModelError, match="is mamba2, config says model.arch=mamba"):
        pretrain(cfg, progress=False, log=lambda *_: None)
    assert not (tmp_path / "cpt").exists(), "a refused job leaves no output folder behind"


def test_a_wider_heldout_split_than_the_base_is_refused(tiny_base, tiny_data, tiny_train, tmp_path):
    from fedem.errors import ConfigError
    from fedem.train import FinetuneConfig, finetune

    # The base held out 5%: at 10%, documents it trained on would be scored as held-out.
    for cfg, run in (
        (
            PretrainConfig(
                model=ModelSpec(preset="tiny", init=str(tiny_base)),
                data=tiny_data(heldout_fraction=0.1),
                train=tiny_train(steps=2),
                output=str(tmp_path / "cpt"),
            ),
            pretrain,
        ),
        (
            FinetuneConfig(
                base=str(tiny_base),
                data=tiny_data(heldout_fraction=0.1),
                train=tiny_train(steps=2),
                output=str(tmp_path / "ft"),
            ),
            finetune,
        ),
    ):
        with pytest.raises(ConfigError, match="larger than the starting model's 0.05"):
            run(cfg, progress=False, log=lambda *_: None)
    assert not (tmp_path / "cpt").exists() and not (tmp_path / "ft").exists()


def test_nested_heldout_splits_never_overlap_training(tiny_data):
    """What the rule relies on: a smaller fraction's held-out set is inside a larger one's."""
    from fedem.data import load_documents, split_heldout

    docs = [d for s in tiny_data().sources for d in load_documents(s)]
    base_train, base_held = split_heldout(docs, 0.05)
    _, job_held = split_heldout(docs, 0.02)
    assert set(job_held) <= set(base_held) and not set(job_held) & set(base_train)
