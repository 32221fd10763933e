"""How the simulator reads and scores what the jobs made.

The gate's per-candidate rows joined from the nightly's own report; the merge record of a
published checkpoint; and the report's figures:
held-out bits/byte per language (per-document, as the gate and lm-eval score) of checkpoints and
of checkpoint + adapter, on a fixed subset of the private held-out set, cached by revision.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from fedem.clock import format_time
from fedem.sim.jobs import REPO


def read_gate_rows(outcome, folder: Path, night: int, at: datetime) -> list[dict]:
    """One row per candidate of the night: verdict, reason, Δ bpb per language (from the gate's
    report, whose candidates are in the order the nightly gated them)."""
    path = folder / "work" / "gate-report.json"  # rebuilt by every run: absent if nothing was gated
    decisions = json.loads(path.read_text())["candidates"] if path.is_file() else []
    # The nightly lists the gated verdicts last, in the gate's order (waits and pull-stage
    # rejections come first).
    gated = list(outcome.verdicts[len(outcome.verdicts) - len(decisions) :]) if decisions else []
    deltas = {}
    if len(decisions) == len(gated):
        for v, d in zip(gated, decisions, strict=True):
            deltas[(v.adapter, v.revision)] = {k: c["delta"] for k, c in (d.get("languages") or {}).items()}
    return [
        {"night": night, "time": format_time(at), "checkpoint": outcome.checkpoint.id, "adapter": v.adapter,
         "revision": v.revision, "verdict": v.decision, "reason": v.reason,
         "delta": deltas.get((v.adapter, v.revision), {})}
        for v in outcome.verdicts
    ]  # fmt: skip


def merged_entries(hub, repo: str, rev_id: str) -> list[dict]:
    """A merge checkpoint's record: each merged adapter revision, its hops, its credit."""
    from fedem.publish.history import NIGHTLY_KEY, read_hub_record

    record = read_hub_record(hub, repo, hub.resolve(repo, rev_id))
    section = record.get(NIGHTLY_KEY) or {}
    credit = {c["adapter"]: c for c in section.get("credit", [])}
    return [
        {"adapter": m["adapter"], "revision": m["revision"], "hops": list(m["hops"]),
         "credit": credit.get(m["adapter"], {}).get("delta_bpb", {})}
        for m in section.get("merged", [])
    ]  # fmt: skip


class Scorer:
    """Held-out bits/byte per language, on the first ``max_docs`` documents of each language."""

    def __init__(self, heldout_path: Path, languages, max_docs: int, max_length: int):
        from fedem.evaluate.heldout import read_heldout

        held = read_heldout(heldout_path, label="simulated held-out")
        self.docs = {lang: list(held.docs[lang][:max_docs]) for lang in languages}
        self.max_length = max_length
        self._cache: dict[tuple, dict[str, float]] = {}

    def score(self, model, languages=None) -> dict[str, float]:
        from fedem.evaluate.documents import score_documents

        out = {}
        for lang in languages or self.docs:
            s = score_documents(model, self.docs[lang], max_length=self.max_length)
            out[lang] = float(s.bits.sum() / s.bytes.sum())
        return out

    def checkpoint(self, hub, rev_id: str, cache_dir: Path) -> dict[str, float]:
        """A checkpoint revision's figures (pulled through the real, checked download)."""
        key = ("ckpt", rev_id)
        if key not in self._cache:
            from fedem.model import load_model
            from fedem.publish.checkpoint import pull_checkpoint

            folder = pull_checkpoint(hub, REPO, rev_id, cache_dir=cache_dir).folder
            self._cache[key] = self.score(load_model(folder))
        return self._cache[key]

    def model_dir(self, folder: Path, key: str) -> dict[str, float]:
        if ("dir", key) not in self._cache:
            from fedem.model import load_model

            self._cache[("dir", key)] = self.score(load_model(folder))
        return self._cache[("dir", key)]

    def adapter(self, hub, base_rev: str, adapter_dir: Path, languages, cache_dir: Path) -> dict[str, float]:
        """Checkpoint + adapter on the adapter's own languages (what its contributor improved)."""
        from fedem.evaluate.loading import load_for_inference
        from fedem.publish.checkpoint import pull_checkpoint

        folder = pull_checkpoint(hub, REPO, base_rev, cache_dir=cache_dir).folder
        return self.score(load_for_inference(folder, adapter_dir), languages)
