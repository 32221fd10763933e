"""Credit: what each accepted adapter is worth inside the merged model, by leaving it out.

With adapters ``S`` merged, adapter k's contribution on a language is
``Δ_k = bpb(merge(S)) - bpb(merge(S \\ {k}))``, scored on the night's sample with the same
paired bootstrap as the gate (negative: the merged model is better with k in it). It accounts
for overlap between adapters (two that teach the same thing share the credit) in a way that
scoring each one alone on the base cannot.

The merge itself is not done here: ``build_merged(adapters) -> model`` is injected, so the
nightly passes the real one (``fedem.merge``) and tests pass a simple stand-in. K + 1 merges
and scorings in all; each merged model is dropped before the next is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fedem.evaluate.stats import Comparison
from fedem.gate.policy import GatePolicy
from fedem.gate.run import Night, compare_night, score_night


def leave_one_out(
    build_merged: Callable[[Sequence[Path]], object],
    adapters: Mapping[str, Path],
    night: Night,
    policy: GatePolicy,
) -> dict[str, dict[str, Comparison]]:
    """``{adapter id: {language: Comparison(merged vs merged-without-it)}}``.

    ``adapters`` maps each accepted adapter's id (weights sha256) to its folder, in merge order.
    """
    ids = list(adapters)
    full_model = build_merged([adapters[i] for i in ids])
    full = score_night(full_model, night, policy)
    del full_model
    out = {}
    for k in ids:
        without = build_merged([adapters[i] for i in ids if i != k])
        scores = score_night(without, night, policy)
        del without
        out[k] = compare_night(scores, full, night, policy)
    return out
