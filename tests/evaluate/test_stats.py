"""The paired bootstrap on synthetic per-document scores: no model needed."""

import numpy as np
import pytest

from fedem.evaluate.documents import DocScores
from fedem.evaluate.stats import paired_bootstrap, resample_indices, unpaired_bootstrap


def _docs(rng, n, shift, difficulty_sd=1.0, noise_sd=0.05):
    """Reference and candidate scores of n documents: the candidate is better by ``shift``
    bits/byte on average, documents vary in difficulty far more than the effect (correlated)."""
    nbytes = rng.integers(100, 600, size=n)
    hardness = 2.0 + difficulty_sd * rng.standard_normal(n).clip(-1.5, 1.5)  # bits/byte per doc
    ref = nbytes * hardness
    cand = ref + nbytes * (shift + noise_sd * rng.standard_normal(n))
    return DocScores(ref, nbytes, 2048), DocScores(cand, nbytes, 2048)


@pytest.mark.parametrize("confidence", [0.8, 0.95])
def test_paired_ci_covers_a_known_shift_at_the_stated_rate(confidence):
    rng = np.random.default_rng(1234)
    shift, reps, covered = -0.03, 300, 0
    for r in range(reps):
        ref, cand = _docs(rng, 60, shift)
        c = paired_bootstrap(ref, cand, resample_indices(60, 1000, [7, r]), confidence)
        covered += c.lo <= shift <= c.hi
        assert c.lo <= c.delta <= c.hi and c.resamples == 1000 and c.documents == 60
    # Percentile bootstrap at n=60 covers slightly under nominal; 300 reps give sd ~0.013-0.023.
    assert abs(covered / reps - confidence) < 0.05, covered / reps


def test_paired_ci_is_narrower_than_unpaired_on_correlated_scores():
    rng = np.random.default_rng(5)
    ref, cand = _docs(rng, 64, -0.02)
    paired = paired_bootstrap(ref, cand, resample_indices(64, 2000, 0), 0.95)
    lo, hi = unpaired_bootstrap(ref, cand, 2000, 0.95, seed=0)
    assert (paired.hi - paired.lo) < (hi - lo) / 5
    assert paired.hi < 0 < hi  # only the paired interval sees the gain


def test_delta_is_the_byte_weighted_difference_and_seeded():
    ref = DocScores(np.array([100.0, 300.0]), np.array([50, 100]), 2048)
    cand = DocScores(np.array([90.0, 300.0]), np.array([50, 100]), 2048)
    c = paired_bootstrap(ref, cand, resample_indices(2, 500, 3), 0.9)
    assert c.delta == pytest.approx(-10 / 150)
    assert c.reference_bpb == pytest.approx(400 / 150) and c.bytes == 150
    again = paired_bootstrap(ref, cand, resample_indices(2, 500, 3), 0.9)
    assert (again.lo, again.hi) == (c.lo, c.hi)


def test_scores_at_different_max_length_are_refused():
    a = DocScores(np.ones(3), np.ones(3, dtype=np.int64), 2048)
    b = DocScores(np.ones(3), np.ones(3, dtype=np.int64), 1024)
    with pytest.raises(ValueError, match="max_length"):
        paired_bootstrap(a, b, resample_indices(3, 100, 0), 0.95)
