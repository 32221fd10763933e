"""An adapter applied in memory: what PEFT computes, restored bit for bit, and bypasses detected."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from fedem.evaluate.delta import LoraDelta, applied, merge_gap, unmerged
from fedem.model import build_model


@pytest.fixture(scope="module")
def model_and_delta():
    model = build_model("tiny", seed=1).eval()
    g = torch.Generator().manual_seed(0)
    factors = {}
    for name, mod in model.named_modules():
        if name.endswith("in_proj"):
            o, i = mod.weight.shape
            factors[name] = (0.1 * torch.randn(4, i, generator=g), 0.1 * torch.randn(o, 4, generator=g))
    return model, LoraDelta(16 / 4, factors)


def test_applied_equals_peft_unmerged_and_restores_exactly(model_and_delta):
    import copy

    model, delta = model_and_delta
    x = torch.randint(3, 259, (2, 40))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        base_logits = model(input_ids=x).logits
        with applied(model, delta):
            merged = model(input_ids=x).logits
        with unmerged(model, delta):
            hooked = model(input_ids=x).logits
        peft = get_peft_model(
            copy.deepcopy(model),
            LoraConfig(r=4, lora_alpha=16, target_modules=["in_proj"], init_lora_weights=False),
        )
        for name, (a, b) in delta.factors.items():
            layer = peft.get_submodule(f"base_model.model.{name}")
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
        reference = peft(input_ids=x).logits
    torch.testing.assert_close(merged, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hooked, reference, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(merged, base_logits, atol=1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert merge_gap(model, delta, x) < 1e-4


class _Bypass(torch.nn.Module):
    """Reads its Linear's weight directly, as some kernels do (the dt_proj trap)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(259, 8)
        self.proj = torch.nn.Linear(8, 259, bias=False)

    def forward(self, input_ids):
        h = self.emb(input_ids)
        return type("Out", (), {"logits": h @ self.proj.weight.t()})()


def test_merge_gap_catches_a_weight_read_behind_the_module():
    model = _Bypass()
    delta = LoraDelta(1.0, {"proj": (torch.ones(1, 8), torch.ones(259, 1))})
    assert merge_gap(model, delta, torch.randint(3, 259, (1, 8))) > 0.01
    nan = LoraDelta(1.0, {"proj": (torch.full((1, 8), float("nan")), torch.ones(259, 1))})
    assert merge_gap(model, nan, torch.randint(3, 259, (1, 8))) == float("inf")
