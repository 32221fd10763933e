"""Data-free defences: factored cosines and norms equal the dense ones; the pure decision rule."""

import math

import pytest
import torch

from fedem.evaluate.delta import LoraDelta
from fedem.evaluate.stats import Comparison
from fedem.gate.decide import REASONS, CandidateScores, Decision, decide
from fedem.gate.policy import GatePolicy
from fedem.gate.screen import cosine, inner, norm


def _delta(seed, r=4, scale=2.0, modules=("a", "b")):
    g = torch.Generator().manual_seed(seed)
    return LoraDelta(
        scale, {m: (torch.randn(r, 12, generator=g), torch.randn(10, r, generator=g)) for m in modules}
    )


def _dense(d):
    return {m: d.scale * (b.double() @ a.double()) for m, (a, b) in d.factors.items()}


def test_factored_inner_product_equals_the_dense_one():
    x, y = _delta(0), _delta(1, r=3, scale=0.5, modules=("a", "b", "c"))
    dx, dy = _dense(x), _dense(y)
    assert inner(x, y) == pytest.approx(sum(float((dx[m] * dy[m]).sum()) for m in ("a", "b")), rel=1e-10)
    assert norm(x) == pytest.approx(math.sqrt(sum(float((v**2).sum()) for v in dx.values())), rel=1e-10)


def test_scaled_and_sign_flipped_copies_have_unit_cosine():
    x = _delta(2)
    scaled = LoraDelta(x.scale, {m: (a, 1.01 * b) for m, (a, b) in x.factors.items()})
    flipped = LoraDelta(x.scale, {m: (-a, b) for m, (a, b) in x.factors.items()})
    assert cosine(x, scaled) == pytest.approx(1.0, abs=1e-12)
    assert cosine(x, flipped) == pytest.approx(-1.0, abs=1e-12)
    assert abs(cosine(x, _delta(3))) < 0.5


def test_merged_deltas_read_on_their_own_base_screen_copies():
    # The nightly hands the gate (sha256, ΔW) of adapters merged into earlier checkpoints.
    from fedem.gate.screen import Candidate, screen

    class _Model(torch.nn.Module):  # the adapted modules' weights, for the relative norm
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(12, 10), torch.nn.Linear(12, 10)

    merged = _delta(5, scale=0.01)
    copy = LoraDelta(merged.scale, {m: (a, 1.01 * b) for m, (a, b) in merged.factors.items()})
    fresh = _delta(6, scale=0.01)
    items = [Candidate("c" * 64, 0, ("hi",), copy), Candidate("d" * 64, 1, ("hi",), fresh),
             Candidate("e" * 64, 2, ("hi",), merged)]  # fmt: skip
    out = screen(items, [("m" * 64, merged), ("e" * 64, merged)], GatePolicy(), _Model())
    assert (
        isinstance(out[0], Decision)
        and out[0].reason == "near_duplicate"
        and "merged adapter" in out[0].detail
    )
    assert isinstance(out[1], Candidate)
    assert isinstance(out[2], Decision) and out[2].reason == "duplicate"


def _cmp(delta, half=0.001):
    return Comparison(40, 10_000, 2.0, 2.0 + delta, delta, delta - half, delta + half, 0.95, 1000)


POLICY = GatePolicy(epsilon=0.002, delta=0.01, languages=("en", "hi", "te"))


@pytest.mark.parametrize(
    ("hi", "en", "reason"),
    [
        (-0.05, 0.0, None),
        (-0.05, 0.0089, None),  # hi bound 0.0099 <= delta
        (-0.05, 0.0095, "regression"),  # upper bound 0.0105 > delta
        (-0.0015, 0.0, "no_gain"),  # upper bound -0.0005 not below -epsilon
        (0.02, 0.02, "harmful"),
    ],
)
def test_decide(hi, en, reason):
    d = decide(CandidateScores("c", ("hi",), {"en": _cmp(en), "hi": _cmp(hi), "te": _cmp(0.0)}, True), POLICY)
    assert d.reason == reason and d.accepted == (reason is None)
    assert (d.languages is not None) == d.accepted  # rejected: no figures


def test_decide_refuses_non_finite_and_unscored_targets():
    comps = {"en": _cmp(0.0), "hi": _cmp(-0.1)}
    assert decide(CandidateScores("c", ("hi",), {}, False), POLICY).reason == "non_finite"
    assert decide(CandidateScores("c", ("ta",), comps, True), POLICY).reason == "invalid"
    assert decide(CandidateScores("c", (), comps, True), POLICY).reason == "invalid"


def test_decisions_are_consistent():
    with pytest.raises(ValueError):
        Decision("c", False, "regression", languages={"hi": _cmp(0.0)})
    with pytest.raises(ValueError):
        Decision("c", False, "made-up")
    assert set(REASONS) >= {"invalid", "non_finite", "no_op", "duplicate", "near_duplicate", "unmergeable"}
