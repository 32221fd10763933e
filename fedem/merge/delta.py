"""ΔW of a LoRA module: the weight change one adapter (or a weighted sum of them) makes to one Linear.

Shape letters: o out features, i in features, r one adapter's rank, R = Σ rₖ, K adapters.

PEFT's LoRA on a Linear of weight (o, i) computes ``y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ`` with A (r, i),
B (o, r) and s = α/r (fedem refuses rsLoRA, DoRA and fan_in_fan_out, so nothing else changes
the scale or layout). Merging it is therefore ``W + s·B·A``. Everything here runs in fp32 so
that the result is rounded once, by the caller, to the base's dtype.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class LoraTerm:
    """One adapter's contribution to one Linear: its factors, scale, merge weight and identity."""

    A: torch.Tensor  # (r, i)
    B: torch.Tensor  # (o, r)
    scale: float  # s = α / r
    weight: float  # wₖ from the MergeSpec
    adapter: str  # the adapter's weights sha256: DARE's masks derive from it, not from its position

    @property
    def shape(self) -> tuple[int, int]:
        return (self.B.shape[0], self.A.shape[1])


def lora_delta(term: LoraTerm) -> torch.Tensor:
    """ΔW = s·B·A, dense, fp32: (o, r) @ (r, i) -> (o, i)."""
    return torch.mm(term.B.float(), term.A.float()).mul_(term.scale)


def weighted_low_rank_sum(terms: list[LoraTerm], divisor: float = 1.0) -> torch.Tensor:
    """Σₖ wₖ·sₖ·Bₖ·Aₖ / divisor, exactly, as one product of stacked factors.

    [w₁s₁B₁ … w_Ks_KB_K] (o, R) @ [A₁; …; A_K] (R, i) equals the sum of the K products, so the
    weighted sum never forms K dense deltas, and costs one GEMM of inner size R instead of K.
    (PEFT's ``add_weighted_adapter(combination_type="linear")`` instead sums the A's and the B's
    separately, which is not this sum: it adds the cross terms Bⱼ·Aₖ, BRIEF §3.)
    """
    coef = [t.weight * t.scale / divisor for t in terms]
    B = torch.cat([t.B.float() * c for t, c in zip(terms, coef, strict=True)], dim=1)  # (o, R)
    A = torch.cat([t.A.float() for t in terms], dim=0)  # (R, i)
    return torch.mm(B, A)  # (o, i)
