"""Mixing sources: temperature-scaled probabilities and a deterministic, seekable order.

The whole run's block order is a pure function of (block counts, probabilities, seed), so
the batch for any step can be recomputed after a crash: resuming needs no sampler state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mixture_probs(sizes: Sequence[int], weights: Sequence[float], temperature: float) -> np.ndarray:
    """``p_i ∝ (w_i·n_i)^(1/T)``; sources with no blocks get 0. (S,)"""
    base = np.asarray(weights, dtype=np.float64) * np.asarray(sizes, dtype=np.float64)
    if not (base > 0).any():
        raise ValueError("no source has any training blocks")
    scaled = np.where(base > 0, base / base.sum(), 0.0) ** (1.0 / temperature)
    scaled[base <= 0] = 0.0
    return scaled / scaled.sum()


def sample_order(sizes: Sequence[int], probs: np.ndarray, total: int, seed: int) -> np.ndarray:
    """``total`` draws of (source, block): (total, 2) int64.

    The source of each draw follows ``probs``; within a source, blocks are visited in a fresh
    random permutation per pass, so a source is never repeated before it is exhausted.
    """
    rng = np.random.default_rng(seed)
    src = rng.choice(len(sizes), size=total, p=probs)  # (total,)
    out = np.empty((total, 2), dtype=np.int64)
    out[:, 0] = src
    for s, n in enumerate(sizes):
        idx = np.nonzero(src == s)[0]
        if len(idx) == 0:
            continue
        passes = -(-len(idx) // n)
        perm = np.concatenate([rng.permutation(n) for _ in range(passes)])  # (passes·n,)
        out[idx, 1] = perm[: len(idx)]
    return out
