"""Paired comparison of two models on the same documents: Δbits/byte with a bootstrap interval.

For one language with documents ``i`` (``n_i`` bytes, code lengths ``r_i`` bits under the
reference and ``c_i`` under the candidate) the statistic is the difference of the two sets'
bits/byte, ``Δ = Σ(c_i - r_i) / Σ n_i``: negative means the candidate compresses better.

Its interval is a percentile bootstrap over documents, *paired*: each resample draws document
indices once and uses them for both models, so the (large) variation in difficulty between
documents cancels and only the candidate's effect is left. Resamples are drawn from a seeded
generator and their number is recorded; the same index matrix can serve every candidate scored
against one reference (:func:`resample_indices`), so their intervals are computed alike.

``confidence`` is the coverage of the two-sided interval ``[lo, hi]``; the gate reads ``hi`` as
the upper confidence bound (so a one-sided test at (1 - confidence)/2). Shapes: B resamples,
n documents.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedem.evaluate.documents import DocScores


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Candidate minus reference on one language's documents."""

    documents: int
    bytes: int
    reference_bpb: float
    candidate_bpb: float
    delta: float  # candidate_bpb - reference_bpb
    lo: float
    hi: float
    confidence: float
    resamples: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def resample_indices(n: int, resamples: int, seed: int | list[int]) -> np.ndarray:
    """(B, n) document indices drawn with replacement, from a seeded generator."""
    if n < 1:
        raise ValueError("no documents to resample")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [tail, 1 - tail])
    return float(lo), float(hi)


def paired_bootstrap(
    reference: DocScores, candidate: DocScores, idx: np.ndarray, confidence: float
) -> Comparison:
    """Δbits/byte of ``candidate`` vs ``reference`` on the same documents, with its paired CI."""
    if reference.max_length != candidate.max_length:
        raise ValueError(
            f"scores at different max_length ({reference.max_length} vs {candidate.max_length}) "
            "are not comparable: rolling windows restart Mamba's state"
        )
    if not np.array_equal(reference.bytes, candidate.bytes):
        raise ValueError("paired scores must be on the same documents")
    diff = candidate.bits - reference.bits  # (n,)
    nbytes = reference.bytes.astype(np.float64)  # (n,)
    boot = diff[idx].sum(axis=1) / nbytes[idx].sum(axis=1)  # (B,)
    lo, hi = _interval(boot, confidence)
    total = nbytes.sum()
    return Comparison(
        documents=len(diff),
        bytes=int(total),
        reference_bpb=float(reference.bits.sum() / total),
        candidate_bpb=float(candidate.bits.sum() / total),
        delta=float(diff.sum() / total),
        lo=lo,
        hi=hi,
        confidence=confidence,
        resamples=int(idx.shape[0]),
    )


def unpaired_bootstrap(
    reference: DocScores, candidate: DocScores, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """The same Δ's interval if the two score sets were resampled independently (for comparison:
    it ignores that both models saw the same documents, and is wider when scores correlate)."""
    rng = np.random.default_rng(seed)
    n_r, n_c = len(reference.bits), len(candidate.bits)
    i = rng.integers(0, n_r, size=(resamples, n_r))  # (B, n)
    j = rng.integers(0, n_c, size=(resamples, n_c))  # (B, n)
    ref = reference.bits[i].sum(1) / reference.bytes[i].sum(1)
    cand = candidate.bits[j].sum(1) / candidate.bytes[j].sum(1)
    return _interval(cand - ref, confidence)
