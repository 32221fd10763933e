"""Evaluation: bits/byte per document and per language, paired comparisons, lm-eval tasks.

- :mod:`~fedem.evaluate.perplexity`: the training loop's packed-block figure (torch only);
- :mod:`~fedem.evaluate.documents`: per-document scores, as lm-eval's rolling loglikelihood;
- :mod:`~fedem.evaluate.heldout`: held-out documents by language, and seeded samples of them;
- :mod:`~fedem.evaluate.stats`: the paired bootstrap of Δbits/byte;
- :mod:`~fedem.evaluate.delta`: an adapter applied in memory to one loaded base;
- :mod:`~fedem.evaluate.harness`: fedem's lm-eval tasks (shipped in ``tasks/``) and a runner;
- :mod:`~fedem.evaluate.run`: ``fedem evaluate`` and ``fedem perplexity``.

Only the torch-level names are imported here, so ``import fedem.evaluate`` stays light.
"""

from fedem.evaluate.perplexity import bits_per_byte, nll_sum

__all__ = ["bits_per_byte", "nll_sum"]
