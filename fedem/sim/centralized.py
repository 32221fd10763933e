"""The reference line: centralized training on the union of the federation's data, same compute.

Each round, one trainer spends the tokens the federation's policy spent that day (every hop
trained, the dropped ones included, and CPT's steps) on a LoRA over the union of the data the
federation trains on (every contributor's shard, and the CPT reserve when CPT runs), then folds
it into its model with the same merge code the nightly uses. No relay, no gate, no split, no
replay: the union already holds every language someone trains. The same base and held-out set.
The reference sees the CPT reserve from round 1, where CPT adds it a share a night.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedem.sim.config import SimConfig
from fedem.sim.world import Split, join_documents


def run_centralized(
    cfg: SimConfig,
    split: Split,
    trained: dict[str, bool],
    base_model: Path,
    tokens_by_round: dict[int, int],
    folder: Path,
    scorer,
    *,
    log: Callable[[str], None],
    tick: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Train round by round; returns the rounds (round 0 is the base) with their bits/byte.

    ``trained`` says, per language, whether a contributor holds a shard of it; the union holds
    only those pools (and the CPT reserve of every language when ``cfg.cpt`` runs).
    """
    from fedem.io import atomic_write_text
    from fedem.merge import MergeSpec, merge_to_dir
    from fedem.sim.jobs import central_config, local_sources
    from fedem.train.jobs import finetune

    union = {}
    for lang in cfg.languages:
        docs = (split.pool[lang] if trained[lang] else []) + split.reserve[lang]
        if docs:
            path = folder / "data" / f"{lang}.txt"
            union[lang] = atomic_write_text(path, join_documents(split.heldout[lang] + docs))
    sources = local_sources(union)
    h = cfg.hop
    per_step = h.batch_size * h.block_size
    model = base_model
    rounds = [{"round": 0, "checkpoint": None, "relation": "root", "bpb": scorer.model_dir(model, "base")}]
    for r in range(1, cfg.days + 1):
        steps = tokens_by_round.get(r, 0) // per_step
        if steps:
            run = folder / f"round-{r:02d}"
            ft = central_config(cfg, model, sources, steps, r, run)
            finetune(ft, progress=False, log=log)
            merge_to_dir(model, [run / "adapter"], MergeSpec(), run / "model")
            model = run / "model"
        rounds.append(
            {"round": r, "checkpoint": None, "relation": "none", "steps": steps,
             "bpb": scorer.model_dir(model, f"central-{r}")}
        )  # fmt: skip
        tick(f"centralized round {r}: {steps} steps")
    return rounds
