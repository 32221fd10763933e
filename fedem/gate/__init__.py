"""The single-blind gate: which candidate adapters may be merged, decided without knowing who made them.

- :mod:`~fedem.gate.policy`: the policy (``pipelines/nightly.yaml``'s ``gate:``) and the night's seed;
- :mod:`~fedem.gate.screen`: blinding, and the defences that need no data (norms, duplicates);
- :mod:`~fedem.gate.decide`: the rejection reasons and the pure acceptance rule;
- :mod:`~fedem.gate.run`: ``fedem gate`` end to end, and the join of names after the decisions;
- :mod:`~fedem.gate.credit`: leave-one-out credit inside a merged model.
"""

from fedem.gate.decide import REASONS, CandidateScores, Decision, decide
from fedem.gate.policy import GatePolicy, gate_seed, load_policy

__all__ = ["REASONS", "CandidateScores", "Decision", "GatePolicy", "decide", "gate_seed", "load_policy"]
