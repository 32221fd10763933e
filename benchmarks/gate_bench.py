"""Gate time for K=8 candidates on the demo's `small` model, beside K plain perplexity calls.

``python -m benchmarks.gate_bench [--base DIR] [--cli]``

- **base**: the demo's pretrained model (``runs/demo/pretrain``) when present or given, else a
  fresh ``small`` Seshu (time does not depend on what the weights are);
- **candidates**: 8 real adapters, each a 10-step hop on a different language with its own
  seed (distinct, finite, in the norm bounds: every one reaches scoring, none is screened out);
- **documents**: 64 per language for all 12 languages, from the embedded corpus (held-out
  documents first, then others: this measures time, not quality);
- **gate**: ``run_gate`` end to end (load the base once, validate and blind 8 adapters, screen,
  score the base once, apply each adapter in memory and score it, bootstrap, decide);
- **baseline**: 8 × ``score_model_dir`` (what ``fedem perplexity BASE --adapter A --data F``
  runs) on the same documents, in this process; with ``--cli`` also 8 × the command itself.

The gate scores targets first and stops for a candidate that fails on them; the bench reports
how many candidates were scored on every language, so the figure is not flattered by rejections.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

K = 8
DOCS = 64
HOP_LANGS = ("hi", "te", "ta", "bn", "mr", "kn", "gu", "ml")


def _docs() -> dict[str, list[str]]:
    from fedem.data import EMBEDDED_LANGS, SourceSpec, load_documents, split_heldout

    out = {}
    for lang in EMBEDDED_LANGS:
        train, held = split_heldout(load_documents(SourceSpec(embedded=lang)), 0.05)
        out[lang] = (held + train)[:DOCS]
    return out


def _base(tmp: Path, given: str | None) -> Path:
    from fedem.model import build_model
    from fedem.model.seshu import save_model

    for cand in (given, "runs/demo/pretrain/model"):
        if cand and (Path(cand) / "config.json").is_file():
            return Path(cand)
        if cand and (Path(cand) / "model" / "config.json").is_file():
            return Path(cand) / "model"
    save_model(build_model("small"), tmp / "base")
    return tmp / "base"


def _hops(base: Path, tmp: Path, k: int = K) -> list[Path]:
    from fedem.data import DataSpec, SourceSpec
    from fedem.train import FinetuneConfig, TrainSpec, finetune

    out = []
    for i, lang in enumerate(HOP_LANGS[:k]):
        cfg = FinetuneConfig(
            base=str(base),
            name=f"bench-{lang}",
            data=DataSpec(sources=(SourceSpec(embedded=lang),), heldout_max_blocks=4),
            train=TrainSpec(
                steps=10, batch_size=8, warmup_steps=2, log_every=100, save_every=100, lr=3e-3, seed=i
            ),
            output=str(tmp / f"hop-{lang}"),
        )
        finetune(cfg, progress=False, log=lambda *_: None)
        out.append(tmp / f"hop-{lang}" / "adapter")
    return out


def run(base_dir: str | None = None, cli: bool = False) -> list[tuple[str, float, str]]:
    """Rows of (name, value, unit)."""
    import warnings

    warnings.filterwarnings("ignore")
    from fedem.evaluate.heldout import heldout_of as make_heldout
    from fedem.evaluate.heldout import read_heldout, write_heldout
    from fedem.evaluate.run import score_model_dir
    from fedem.gate.policy import GatePolicy
    from fedem.gate.run import run_gate
    from fedem.gate.screen import Submission

    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        base = _base(tmp, base_dir)
        hops = _hops(base, tmp)
        docs = _docs()
        held = write_heldout(tmp / "heldout.jsonl", make_heldout(docs, "bench"))
        text = tmp / "docs.txt"  # the same documents for `fedem perplexity --data`
        text.write_text("\n\n".join(d for v in docs.values() for d in v), encoding="utf-8")
        os.environ.setdefault("FEDEM_GATE_SALT", "bench")
        policy = GatePolicy(docs_per_language=DOCS)
        subs = [Submission(h, (lang,)) for h, lang in zip(hops, HOP_LANGS, strict=False)]

        t0 = time.perf_counter()
        report = run_gate(
            base, subs, policy, day=date(2026, 12, 1), heldout=read_heldout(held), log=lambda *_: None
        )
        gate_s = time.perf_counter() - t0
        full = sum(c["decision"] == "accept" or c.get("reason") == "regression" for c in report["candidates"])

        t0 = time.perf_counter()
        for h in hops:
            score_model_dir(base, text, adapter=h, block_size=256, max_blocks=10**9)
        plain_s = time.perf_counter() - t0
        rows += [
            ("gate.k8_seconds", gate_s, "s"),
            ("gate.k8_plain_perplexity_seconds", plain_s, "s"),
            ("gate.ratio", gate_s / plain_s, "x"),
            ("gate.candidates_scored_on_every_language", full, "of 8"),
            ("gate.accepted", sum(c["decision"] == "accept" for c in report["candidates"]), "of 8"),
        ]
        if cli:
            t0 = time.perf_counter()
            for h in hops:
                subprocess.run(
                    [sys.executable, "-m", "fedem", "perplexity", str(base), "--adapter", str(h)]
                    + ["--data", str(text), "--max-blocks", str(10**9)],
                    check=True,
                    capture_output=True,
                )
            rows.append(("gate.k8_perplexity_commands_seconds", time.perf_counter() - t0, "s"))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=None)
    ap.add_argument("--cli", action="store_true")
    args = ap.parse_args(argv)
    for name, value, unit in run(args.base, args.cli):
        print(f"{name:45s} {value:10.3f} {unit}")


if __name__ == "__main__":
    main()
