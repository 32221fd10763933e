"""The replay curve: target-language gain against other-language regression, per replay share.

``python -m benchmarks.replay_curve [--base DIR] [--shares 0,0.1,0.25,0.5] [--work DIR]``

Pretrains the demo's ``small`` Seshu (``pipelines/pretrain.yaml``, held-out fraction 0.1 for
more held-out documents per language) unless ``--base`` is given, then runs the demo's
one-language hop (``pipelines/finetune.yaml``: Telugu) once per replay share, and scores each
hop against the base on every language's held-out documents with the gate's statistics and
the default policy of ``pipelines/nightly.yaml``. Prints one row per share, and the gate's
decision for each hop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path


def main(argv=None) -> None:
    import os
    import warnings

    warnings.filterwarnings("ignore")
    from fedem import config as cfgio
    from fedem.evaluate.heldout import embedded_heldout
    from fedem.evaluate.loading import base_heldout_fraction, load_base
    from fedem.gate.policy import load_policy
    from fedem.gate.run import run_gate
    from fedem.gate.screen import Submission
    from fedem.train import FinetuneConfig, PretrainConfig, finetune, pretrain

    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=None)
    ap.add_argument("--shares", default="0,0.1,0.25,0.5")
    ap.add_argument("--work", default=None)
    ap.add_argument("--lang", default="te")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="fedem-replay-"))
    t0 = time.perf_counter()
    base = args.base
    if base is None:
        base = str(work / "pretrain")
        if not (Path(base) / "model" / "fedem.json").is_file():
            cfg = cfgio.load(
                PretrainConfig, "pipelines/pretrain.yaml", [f"output={base}", "data.heldout_fraction=0.1"]
            )
            pretrain(cfg, progress=False, log=lambda *_: None)
    print(f"base {base} ({time.perf_counter() - t0:.0f} s)")
    policy = load_policy("pipelines/nightly.yaml")
    loaded = load_base(base)
    fraction = base_heldout_fraction(loaded, 0.05)
    heldout = embedded_heldout(fraction)
    counts = {k: len(v) for k, v in heldout.docs.items()}
    policy = cfgio.replace(policy, min_docs=min(counts.values()), docs_per_language=max(counts.values()))
    os.environ.setdefault(policy.seed_salt_env, "replay-curve")
    del loaded
    print(f"held-out split {fraction:g}: documents per language {counts}")
    print(f"{'replay':>6}  {'target Δ [CI]':>26}  {'worst other Δ (lang)':>22}  {'mean other Δ':>12}  gate")
    for share in (float(s) for s in args.shares.split(",")):
        out = work / f"hop-{share:g}"
        if not (out / "adapter" / "fedem.json").is_file():
            cfg = cfgio.load(
                FinetuneConfig,
                "pipelines/finetune.yaml",
                [
                    f"base={base}",
                    f"output={out}",
                    f"data.replay={share}",
                    f"data.heldout_fraction={fraction}",
                ],
            )
            finetune(cfg, progress=False, log=lambda *_: None)
        rep = run_gate(
            base,
            [Submission(out / "adapter", (args.lang,))],
            policy,
            day=date(2026, 12, 1),
            heldout=heldout,
            log=lambda *_: None,
        )
        (c,) = rep["candidates"]
        # The gate publishes no figures for a rejected hop; this script is not the gate, so it
        # scores the hop again for the curve.
        langs = c.get("languages") or _figures(base, out / "adapter", heldout, policy)
        tgt = langs[args.lang]
        others = {k: v for k, v in langs.items() if k != args.lang}
        worst = max(others, key=lambda k: others[k]["delta"])
        mean_other = sum(v["delta"] for v in others.values()) / len(others)
        verdict = c["decision"] + (f" ({c['reason']}: {c['detail']})" if c["decision"] == "reject" else "")
        print(
            f"{share:6.2f}  {tgt['delta']:+.4f} [{tgt['lo']:+.4f}, {tgt['hi']:+.4f}]  "
            f"{others[worst]['delta']:+.4f} ({worst}) {others[worst]['hi']:+.4f}  {mean_other:+12.4f}  {verdict}",
            flush=True,
        )
    print(f"total {time.perf_counter() - t0:.0f} s; work folder {work}")


def _figures(base, adapter, heldout, policy) -> dict:
    from fedem.evaluate.run import evaluate_model

    rep = evaluate_model(
        base,
        [adapter],
        data=None,
        max_length=policy.max_length,
        confidence=policy.confidence,
        resamples=policy.resamples,
    )
    return rep["adapters"][0]["languages"]


if __name__ == "__main__":
    main()
