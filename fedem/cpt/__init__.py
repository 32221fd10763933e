"""Continuous pretraining: continue the newest checkpoint on data its chain has not seen.

- :mod:`~fedem.cpt.config`: :class:`CptConfig` (``pipelines/cpt.yaml``);
- :mod:`~fedem.cpt.cursor`: the data cursor, so no block is trained on twice;
- :mod:`~fedem.cpt.score`: held-out bits/byte per language and the publish rule;
- :mod:`~fedem.cpt.run`: :func:`run_cpt`, the job.

It sits above ``train`` and ``publish`` (it drives the one and calls the other).
"""

from fedem.cpt.config import CptConfig, CptEval
from fedem.cpt.run import CptOutcome, run_cpt

__all__ = ["CptConfig", "CptEval", "CptOutcome", "run_cpt"]
