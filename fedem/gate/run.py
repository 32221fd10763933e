"""``fedem gate``: score K candidate adapters against one base, blind, and decide each.

1. Inputs are checked before any work: the policy, the salt, the private held-out set (every
   scored language needs ``min_docs`` documents). Bad input is one line, and nothing is written.
2. The night's sample: ``docs_per_language`` documents per language, drawn with
   :func:`~fedem.gate.policy.gate_seed` (date + secret salt). The bootstrap's index matrices
   come from the same seed, shared by every candidate.
3. The base is loaded once and its per-document scores computed once.
4. Submissions are blinded and screened (:mod:`fedem.gate.screen`).
5. Each survivor is applied in memory (``W += s·B@A`` on the loaded base, restored after:
   :mod:`fedem.evaluate.delta`), checked to merge exactly (merged vs unmerged logits on a
   fixed probe that is not held-out text), scored on its targets first and then one language at
   a time, and :func:`decide`-d after each step: scoring stops at the first rejection.
6. The report lists decisions per content hash, in arrival order, and is written atomically.
   It and the log carry only hashes, reasons and aggregates: never a name, a path, a
   document, or a per-document figure. :func:`attribute` joins names in afterwards.
"""

from __future__ import annotations

import dataclasses
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import torch

from fedem.config import to_dict
from fedem.errors import FedemError
from fedem.evaluate.delta import LoraDelta, applied, merge_gap
from fedem.evaluate.documents import DocScores, score_documents
from fedem.evaluate.heldout import Heldout, heldout_from_env, sample
from fedem.evaluate.loading import Base, load_adapter, load_base
from fedem.evaluate.stats import paired_bootstrap, resample_indices
from fedem.gate.decide import CandidateScores, Decision, decide, reject
from fedem.gate.policy import GatePolicy, gate_seed, read_salt
from fedem.gate.screen import Candidate, Submission, blind, screen
from fedem.io import atomic_write_json
from fedem.model.tokenizer import encode

REPORT_KIND = "fedem-gate-report"
# Not held-out text: merged and unmerged forwards are compared on this only.
_PROBE = "fedem merge probe · जाँच · పరీక్ష · பரிசோதனை · 0123456789 · The quick brown fox."


@dataclasses.dataclass(frozen=True)
class Night:
    """The night's draw: its seed, the sampled documents and the bootstrap indices per language."""

    day: date
    seed: int
    docs: Mapping[str, list[str]]
    indices: Mapping[str, np.ndarray]  # lang -> (B, n)


def draw_night(policy: GatePolicy, day: date, heldout: Heldout, salt: str) -> Night:
    """The documents and resamples for ``day``: a pure function of (policy, day, held-out, salt)."""
    heldout.require(policy.languages, min_docs=policy.min_docs)
    seed = gate_seed(day, salt)
    docs = sample(heldout, policy.languages, policy.docs_per_language, seed)
    indices = {
        lang: resample_indices(len(docs[lang]), policy.resamples, [seed, 1, zlib.crc32(lang.encode())])
        for lang in policy.languages
    }
    return Night(day, seed, docs, indices)


def score_night(model, night: Night, policy: GatePolicy, **kw) -> dict[str, DocScores]:
    """Per-document scores of ``model`` on the night's sample, every language."""
    return {
        lang: score_documents(model, docs, max_length=policy.max_length, **kw)
        for lang, docs in night.docs.items()
    }


def compare_night(
    ref: Mapping[str, DocScores], cand: Mapping[str, DocScores], night: Night, policy: GatePolicy
):
    return {
        lang: paired_bootstrap(ref[lang], cand[lang], night.indices[lang], policy.confidence) for lang in ref
    }


def _load_merged(folders: Sequence[str | Path], base: Base) -> list[tuple[str, LoraDelta]]:
    out = []
    for f in folders:
        try:
            report, delta = load_adapter(f, base)
        except FedemError as err:
            raise FedemError(
                f"--merged {Path(f).name}: an adapter merged earlier fails validation ({err})"
            ) from None
        out.append((report.weights_sha256, delta))
    return out


def _probe(device) -> torch.Tensor:
    ids = encode(_PROBE)
    return torch.tensor([(ids * (64 // len(ids) + 1))[:64]], device=device)  # (1, 64)


def run_gate(
    base_dir: str | Path,
    submissions: Sequence[Submission],
    policy: GatePolicy,
    *,
    day: date,
    merged: Sequence[str | Path] = (),
    heldout: Heldout | None = None,
    output: str | Path | None = None,
    log: Callable[[str], None] = print,
    tokens_per_batch: int = 16384,
    reference: Mapping[str, DocScores] | None = None,
    merged_deltas: Sequence[tuple[str, LoraDelta]] = (),
) -> dict:
    """Decide every submission; return the blind report (and write it to ``output``).

    ``heldout`` defaults to the private file named by ``$policy.heldout_env``; ``day`` is the
    gate's date (injected: the seed depends on it, tests must not depend on the clock).
    ``reference``: the base's scores on this night's sample (:func:`score_night`), when the
    caller already has them (the nightly scores the merged model against the same ones).
    ``merged``: folders of adapters merged earlier, validated against this base;
    ``merged_deltas``: (weights sha256, ΔW) of merged adapters read on their own base (the
    nightly's: they were trained on an older checkpoint). Both feed the duplicate screens.
    """
    salt = read_salt(policy)
    heldout = heldout if heldout is not None else heldout_from_env(policy.heldout_env)
    night = draw_night(policy, day, heldout, salt)
    base = load_base(base_dir)
    with tempfile.TemporaryDirectory(prefix="fedem-gate-") as stage:
        items = blind(submissions, base, Path(stage))
    items = screen(items, [*_load_merged(merged, base), *merged_deltas], policy, base.model)
    log(
        f"gate {day.isoformat()}: {len(submissions)} candidates, {sum(isinstance(c, Candidate) for c in items)} to score"
    )

    if reference is not None and {k: len(v.bits) for k, v in reference.items()} != {
        k: len(d) for k, d in night.docs.items()
    }:
        raise FedemError("gate: the reference scores are not of this night's sample")
    ref = reference or score_night(base.model, night, policy, tokens_per_batch=tokens_per_batch)
    probe = _probe(next(base.model.parameters()).device)
    decisions: list[Decision] = []
    for c in items:
        if isinstance(c, Decision):
            decisions.append(c)
        else:
            decisions.append(_score_candidate(c, base, night, ref, policy, probe, tokens_per_batch))
        d = decisions[-1]
        log(f"  {d.id[:12]}  {'accept' if d.accepted else 'reject: ' + str(d.reason)}")

    report = {
        "kind": REPORT_KIND,
        "version": 1,
        "date": day.isoformat(),
        "base_sha256": base.sha256,
        "heldout_sha256": heldout.sha256,
        "policy": to_dict(policy),
        "max_length": policy.max_length,
        "sample": {
            lang: {
                "documents": len(night.docs[lang]),
                "bytes": int(ref[lang].bytes.sum()),
                "base_bpb": ref[lang].bits_per_byte,
            }
            for lang in policy.languages
        },
        "candidates": [d.as_dict() for d in decisions],
    }
    if output is not None:
        atomic_write_json(output, report)
    return report


def _score_candidate(
    c: Candidate, base: Base, night: Night, ref, policy: GatePolicy, probe, tokens_per_batch
) -> Decision:
    missing = [t for t in c.targets if t not in policy.languages]
    if not c.targets or missing:
        return reject(c.id, "invalid", f"target languages not scored by the gate: {missing or 'none'}")
    gap = merge_gap(base.model, c.delta, probe)
    if gap == float("inf"):
        return reject(c.id, "non_finite", "its merged weights or outputs are not finite")
    if gap > policy.merge_tolerance:
        return reject(c.id, "unmergeable", f"merged and unmerged logits differ by {gap:.1e} (relative)")
    # Targets first, then one language at a time: once the decision is a rejection (harmful,
    # no gain, non-finite, a regression) nothing scored later could turn it into an acceptance,
    # so the rest is not scored. An accepted candidate is scored on every language.
    stages = [list(c.targets), *([k] for k in policy.languages if k not in c.targets)]
    comparisons: dict = {}
    with applied(base.model, c.delta):
        for stage in stages:
            for lang in stage:
                cand = score_documents(
                    base.model,
                    night.docs[lang],
                    max_length=policy.max_length,
                    tokens_per_batch=tokens_per_batch,
                )
                if not cand.finite:
                    return decide(CandidateScores(c.id, c.targets, {}, False), policy)
                comparisons[lang] = paired_bootstrap(ref[lang], cand, night.indices[lang], policy.confidence)
            decision = decide(CandidateScores(c.id, c.targets, comparisons, True), policy)
            if not decision.accepted:
                return decision
    return decision


def attribute(report: dict, identities: Sequence[Mapping]) -> list[dict]:
    """Join who submitted what, after every decision is made (the gate itself never does).

    ``identities`` are in the submissions' order, each with the ``id`` (weights sha256) the
    nightly computed for it, plus whatever the publisher needs (contributor, adapter, revision).
    """
    decisions = report["candidates"]
    if len(identities) != len(decisions):
        raise FedemError(f"attribute: {len(identities)} identities for {len(decisions)} decisions")
    out = []
    for who, d in zip(identities, decisions, strict=True):
        if not d["id"].startswith("unreadable-") and who.get("id") != d["id"]:
            raise FedemError(
                f"attribute: identity {who.get('id')!s:.12} does not match decision {d['id']:.12}"
            )
        out.append({**who, **d})
    return out
