"""Evaluation: bits-per-byte now; the single-blind gate and lm-eval harness come next."""

from fedem.evaluate.perplexity import bits_per_byte, nll_sum

__all__ = ["bits_per_byte", "nll_sum"]
