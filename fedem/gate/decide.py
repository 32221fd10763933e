"""The gate's decisions: every rejection reason, and the pure acceptance rule :func:`decide`.

:func:`decide` sees only what scoring produced (a content hash, the target languages and one
paired comparison per language) and the policy: never a name, a path, or anything the
contributor reported about their own adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from fedem.evaluate.stats import Comparison
from fedem.gate.policy import GatePolicy

# Every reason a candidate can be rejected for, in the order the gate checks them.
REASONS: dict[str, str] = {
    "invalid": "fails hub validation (files, provenance, config, base, keys, shapes)",
    "non_finite": "non-finite weights or outputs (NaN or inf)",
    "no_op": "a zero or near-zero delta (‖ΔW‖/‖W‖ below min_delta_norm)",
    "norm_out_of_bounds": "a delta norm far outside the policy (‖ΔW‖/‖W‖ above max_delta_norm)",
    "duplicate": "the same weights as an earlier candidate or a merged adapter",
    "near_duplicate": "|cos(ΔW)| at or above duplicate_cosine with an earlier candidate or a merged adapter",
    "unmergeable": "its merged weights do not compute what the adapter computes unmerged",
    "harmful": "significantly worse on its own target language (lower bound of Δ above 0)",
    "no_gain": "no shown gain on a target language (upper bound of Δ not below -epsilon)",
    "regression": "another language regresses (upper bound of Δ above delta)",
}


@dataclasses.dataclass(frozen=True)
class Decision:
    """One candidate's outcome. Only an accepted one carries per-language figures: a rejected
    one gets its reason (and which languages, for the statistical ones), so the held-out set
    cannot be probed through the gate."""

    id: str
    accepted: bool
    reason: str | None = None
    detail: str = ""
    languages: Mapping[str, Comparison] | None = None

    def __post_init__(self):
        if self.accepted == (self.reason is not None):
            raise ValueError("an accepted decision has no reason; a rejection has one")
        if self.reason is not None and self.reason not in REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")
        if not self.accepted and self.languages is not None:
            raise ValueError("a rejected candidate carries no per-language figures")

    def as_dict(self) -> dict:
        out: dict = {"id": self.id, "decision": "accept" if self.accepted else "reject"}
        if self.reason:
            out["reason"] = self.reason
            out["detail"] = self.detail
        if self.languages is not None:
            out["languages"] = {lang: c.as_dict() for lang, c in self.languages.items()}
        return out


def reject(candidate_id: str, reason: str, detail: str = "") -> Decision:
    return Decision(candidate_id, False, reason, detail)


@dataclasses.dataclass(frozen=True)
class CandidateScores:
    """What :func:`decide` gets for one scored candidate."""

    id: str
    targets: tuple[str, ...]
    comparisons: Mapping[str, Comparison]  # every scored language, candidate vs base
    finite: bool  # every per-document score finite


def _langs(langs: list[str]) -> str:
    return ", ".join(langs)


def decide(scores: CandidateScores, policy: GatePolicy) -> Decision:
    """Accept iff every target's upper bound is below -ε and every other language's is at most δ."""
    if not scores.finite:
        return reject(scores.id, "non_finite", "its outputs on the held-out sample are not finite")
    missing = [t for t in scores.targets if t not in scores.comparisons]
    if not scores.targets or missing:
        return reject(scores.id, "invalid", f"target languages not scored by the gate: {missing or 'none'}")
    targets = {t: scores.comparisons[t] for t in scores.targets}
    others = {k: c for k, c in scores.comparisons.items() if k not in targets}
    harmful = [t for t, c in targets.items() if c.lo > 0]
    if harmful:
        return reject(scores.id, "harmful", f"worse on its target language {_langs(harmful)}")
    no_gain = [t for t, c in targets.items() if not c.hi < -policy.epsilon]
    if no_gain:
        return reject(scores.id, "no_gain", f"no gain beyond epsilon shown on {_langs(no_gain)}")
    regressed = [k for k, c in others.items() if c.hi > policy.delta]
    if regressed:
        return reject(scores.id, "regression", f"regresses beyond delta on {_langs(regressed)}")
    return Decision(scores.id, True, languages=dict(scores.comparisons))
