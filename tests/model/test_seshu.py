import json
import subprocess
import sys

import pytest
import torch

from fedem.errors import ConfigError, ModelError
from fedem.model import (
    PRESETS,
    VOCAB_SIZE,
    build_model,
    byte_tokenizer,
    count_parameters,
    load_model,
    save_model,
)
from fedem.model.tokenizer import decode, encode

SCRIPTS = {
    "hi": "नमस्ते दुनिया",
    "te": "తెలుగు భాష",
    "ta": "தமிழ் மொழி",
    "bn": "বাংলা ভাষা",
    "kn": "ಕನ್ನಡ ಭಾಷೆ",
    "mr": "मराठी भाषा",
    "en": "Hello, world!",
}


def test_tokenizer_vocab_matches_embedding_exactly():
    tok = byte_tokenizer()
    assert len(tok) == VOCAB_SIZE == 259
    model = build_model("tiny")
    assert model.get_input_embeddings().weight.shape[0] == VOCAB_SIZE


@pytest.mark.parametrize("lang", sorted(SCRIPTS))
def test_tokenizer_round_trips_every_script(lang):
    text = SCRIPTS[lang]
    tok = byte_tokenizer()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == encode(text)  # our fast path is the tokenizer's exact mapping
    assert tok.decode(ids) == text == decode(ids)
    assert max(ids) < VOCAB_SIZE


@pytest.mark.parametrize("arch", ["mamba2", "mamba"])
def test_tiny_preset_builds_under_1m_params_for_both_archs(arch):
    model = build_model("tiny", arch)
    assert model.config.model_type == arch
    assert count_parameters(model) < 1_000_000
    x = torch.randint(3, VOCAB_SIZE, (2, 32))
    out = model(input_ids=x, labels=x)
    assert out.logits.shape == (2, 32, VOCAB_SIZE)
    assert torch.isfinite(out.loss)


def test_mamba1_never_uses_the_stock_quadratic_scan():
    assert build_model("tiny", "mamba").config.use_mambapy is True


def test_build_is_deterministic_and_does_not_disturb_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_model("tiny", seed=7)
    got = torch.rand(3)
    b = build_model("tiny", seed=7)
    assert torch.equal(expected, got)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n


def test_published_presets_have_mamba_shapes():
    assert (PRESETS["130m"].d_model, PRESETS["130m"].n_layers) == (768, 24)
    assert (PRESETS["2.8b"].d_model, PRESETS["2.8b"].n_layers) == (2560, 64)
    for name in ("130m", "370m", "790m", "1.4b", "2.8b"):
        cfg = PRESETS[name].hf_config("mamba2")
        assert cfg.num_heads * cfg.head_dim == cfg.expand * cfg.hidden_size


def test_unknown_preset_is_a_one_line_error():
    with pytest.raises(ConfigError, match="model.preset: expected one of tiny, small"):
        build_model("huge")


@pytest.mark.parametrize("arch", ["mamba2", "mamba"])
def test_saved_model_loads_with_plain_transformers_and_no_fedem(tmp_path, arch):
    model = build_model("tiny", arch, seed=1)
    save_model(model, tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert "model.safetensors" in files and "config.json" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    x = torch.randint(3, VOCAB_SIZE, (1, 16))
    with torch.no_grad():
        want = model(input_ids=x).logits
    code = f"""
import sys, json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
m = AutoModelForCausalLM.from_pretrained({str(tmp_path / "m")!r})
t = AutoTokenizer.from_pretrained({str(tmp_path / "m")!r})
x = torch.tensor({x.tolist()})
with torch.no_grad():
    y = m(input_ids=x).logits
assert not any(k.startswith('fedem') for k in sys.modules), 'fedem was imported'
print(json.dumps({{"logits": y.flatten().tolist()[:50], "vocab": len(t), "type": m.config.model_type}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["vocab"] == VOCAB_SIZE and got["type"] == arch
    assert torch.allclose(torch.tensor(got["logits"]), want.flatten()[:50], atol=1e-5)


def test_load_refuses_pickles_and_missing_weights(tmp_path):
    save_model(build_model("tiny"), tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"\x80\x04evil")
    with pytest.raises(ModelError, match="refusing pickle files"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").unlink()
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no \\*.safetensors"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path / "nowhere")
