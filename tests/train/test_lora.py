import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from fedem.adapter.lora import add_lora, check_targets, load_trainable
from fedem.errors import ConfigError, FedemError, ModelError
from fedem.model import build_model, load_model
from fedem.train import FinetuneConfig, LoraSpec, finetune


@pytest.mark.parametrize(
    "target,why",
    [
        ("dt_proj", "never trains"),
        ("out_proj", "cannot wrap"),
        ("conv1d", "cannot wrap"),
        ("x_proj", "fused kernel"),
    ],
)
@pytest.mark.parametrize("arch", ["mamba2", "mamba"])
def test_unsafe_lora_targets_are_refused_with_the_reason(target, why, arch):
    with pytest.raises(ConfigError, match=f"lora.targets: '{target}' is refused: .*{why}"):
        check_targets(["in_proj", target], arch)


def test_unknown_target_is_refused():
    with pytest.raises(ConfigError, match="'lm_head' is not a valid target for mamba2"):
        check_targets(["lm_head"], "mamba2")


def test_finetune_config_with_unsafe_target_fails_before_training(tiny_base, tiny_data, tiny_train, tmp_path):
    cfg = FinetuneConfig(
        base=str(tiny_base),
        data=tiny_data(),
        train=tiny_train(),
        output=str(tmp_path / "o"),
        lora=LoraSpec(targets=("in_proj", "dt_proj")),
    )
    with pytest.raises(ConfigError, match="dt_proj"):
        finetune(cfg, progress=False, log=lambda *_: None)
    assert not (tmp_path / "o").exists()


def _finetune(tiny_base, tiny_data, tiny_train, out, adapter=None, **train):
    cfg = FinetuneConfig(
        base=str(tiny_base), adapter=adapter, data=tiny_data(), train=tiny_train(**train), output=str(out)
    )
    return finetune(cfg, progress=False, log=lambda *_: None)


def test_relay_resume_loads_trainable_and_changes_the_weights(tiny_base, tiny_data, tiny_train, tmp_path):
    first = _finetune(tiny_base, tiny_data, tiny_train, tmp_path / "hop1", steps=6)
    second = _finetune(
        tiny_base, tiny_data, tiny_train, tmp_path / "hop2", adapter=str(tmp_path / "hop1"), steps=6
    )
    assert first.trainable_params > 0 and second.trainable_params == first.trainable_params
    a = load_file(tmp_path / "hop1" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "hop2" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(not torch.equal(a[k], b[k]) for k in a), "every LoRA tensor must move in a relay hop"
    # the second hop starts where the first ended: its "before" is the first hop's "after"
    assert second.bpb_before == pytest.approx(first.bpb_after, abs=1e-6)
    prov = json.loads((tmp_path / "hop2" / "adapter" / "fedem.json").read_text())
    assert prov["metrics"]["tensors_changed"] == prov["metrics"]["tensors"] > 0
    assert prov["metrics"]["bpb_before"] > 0 and prov["data"]["fingerprint"]


def test_loaded_adapter_reproduces_the_trained_outputs(tiny_base, tiny_data, tiny_train, tmp_path):
    _finetune(tiny_base, tiny_data, tiny_train, tmp_path / "hop", steps=4)
    base_dir = tiny_base / "model"
    m1 = load_trainable(load_model(base_dir), tmp_path / "hop" / "adapter", "mamba2")
    m2 = load_trainable(load_model(base_dir), tmp_path / "hop" / "adapter", "mamba2")
    plain = load_model(base_dir)
    x = torch.randint(3, 259, (1, 32))
    with torch.no_grad():
        assert torch.equal(m1(input_ids=x).logits, m2(input_ids=x).logits)
        assert not torch.allclose(m1(input_ids=x).logits, plain(input_ids=x).logits)


@pytest.fixture
def saved_adapter(tmp_path):
    model = add_lora(build_model("tiny"), LoraSpec(), "mamba2")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    model.save_pretrained(tmp_path / "ad", safe_serialization=True)
    return tmp_path / "ad"


def test_failed_adapter_load_is_an_error_never_a_fresh_start(saved_adapter, tmp_path):
    with pytest.raises(ModelError, match="adapter folder not found"):
        load_trainable(build_model("tiny"), tmp_path / "missing", "mamba2")
    (saved_adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="refusing pickle files"):
        load_trainable(build_model("tiny"), saved_adapter, "mamba2")
    (saved_adapter / "adapter_model.bin").unlink()
    w = load_file(saved_adapter / "adapter_model.safetensors")
    k = next(iter(w))
    save_file({**w, k: torch.zeros(3, 3)}, saved_adapter / "adapter_model.safetensors")
    with pytest.raises(ModelError, match="has shape"):
        load_trainable(build_model("tiny"), saved_adapter, "mamba2")
    save_file({kk: v for kk, v in w.items() if kk != k}, saved_adapter / "adapter_model.safetensors")
    with pytest.raises(ModelError, match="keys do not match"):
        load_trainable(build_model("tiny"), saved_adapter, "mamba2")
    save_file({**w, k: torch.full_like(w[k], float("nan"))}, saved_adapter / "adapter_model.safetensors")
    with pytest.raises(ModelError, match="non-finite"):
        load_trainable(build_model("tiny"), saved_adapter, "mamba2")


def test_adapter_for_another_base_is_refused(saved_adapter):
    # Same arch, another size (more layers, wider): keys and shapes cannot match.
    with pytest.raises(ModelError, match="keys do not match this base model|has shape"):
        load_trainable(build_model("small"), saved_adapter, "mamba2")


def test_unchanged_adapter_is_refused(tiny_base, tiny_data, tiny_train, tmp_path, monkeypatch):
    # Simulate an optimizer that never updates (the 2024 relay's failure mode): nothing is saved.
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)
    with pytest.raises(FedemError, match="changed no adapter weight"):
        _finetune(tiny_base, tiny_data, tiny_train, tmp_path / "z", steps=2)
    assert not (tmp_path / "z" / "adapter").exists()


def test_continuing_a_tampered_adapter_is_refused_before_loading(tiny_base, tiny_data, tiny_train, tmp_path):
    from fedem.errors import AdapterRejected

    _finetune(tiny_base, tiny_data, tiny_train, tmp_path / "hop1", steps=4)
    weights = tmp_path / "hop1" / "adapter" / "adapter_model.safetensors"
    w = load_file(weights)
    save_file({k: v * 2 for k, v in w.items()}, weights)
    with pytest.raises(AdapterRejected, match="weights were altered after training"):
        _finetune(
            tiny_base, tiny_data, tiny_train, tmp_path / "hop2", adapter=str(tmp_path / "hop1"), steps=4
        )
    assert not (tmp_path / "hop2").exists(), "nothing is written for a refused adapter"


def test_a_relay_hop_keeps_the_adapters_own_lora_settings(tiny_base, tiny_data, tiny_train, tmp_path):
    _finetune(tiny_base, tiny_data, tiny_train, tmp_path / "hop1", steps=4)  # r=8
    cfg = FinetuneConfig(
        base=str(tiny_base),
        adapter=str(tmp_path / "hop1"),
        data=tiny_data(),
        train=tiny_train(steps=4),
        lora=LoraSpec(r=4, alpha=4),
        output=str(tmp_path / "hop2"),
    )
    finetune(cfg, progress=False, log=lambda *_: None)
    prov = json.loads((tmp_path / "hop2" / "adapter" / "fedem.json").read_text())
    assert (prov["lora"]["r"], prov["lora"]["alpha"]) == (8, 16)
    assert "rank 8" in (tmp_path / "hop2" / "adapter" / "README.md").read_text()


def test_published_adapter_reveals_no_local_paths(tiny_base, tiny_train, tmp_path):
    from fedem.data import DataSpec, SourceSpec

    private = tmp_path / "home" / "alice" / "diary.txt"
    private.parent.mkdir(parents=True)
    private.write_text("\n\n".join(f"entry {i}: " + "words " * 40 for i in range(60)))
    cfg = FinetuneConfig(
        base=str(tiny_base),
        data=DataSpec(
            sources=(SourceSpec(path=str(private)),), block_size=64, replay_from=str(private.parent)
        ),
        train=tiny_train(steps=2),
        output=str(tmp_path / "hop"),
    )
    finetune(cfg, progress=False, log=lambda *_: None)
    folder = tmp_path / "hop" / "adapter"
    for name in ("fedem.json", "config.yaml", "README.md"):
        text = (folder / name).read_text()
        assert str(tmp_path) not in text and str(tiny_base.parent) not in text, name
    # the run folder itself keeps the full, resolved config
    assert str(tiny_base) in (tmp_path / "hop" / "config.yaml").read_text()
