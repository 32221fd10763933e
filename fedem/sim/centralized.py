"""The reference line: centralized training on the union of the contributors' data, same compute.

Each round, one trainer spends the tokens the federation's policy spent that day (every hop
trained, the dropped ones included, and CPT's steps) on a LoRA over the union of all shards,
then folds it into its model with the same merge code the nightly uses. No relay, no gate, no
split, no replay: the union already holds every language. The same base, data and held-out set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedem.sim.config import SimConfig
from fedem.sim.world import Split, _docs


def run_centralized(
    cfg: SimConfig,
    split: Split,
    base_model: Path,
    tokens_by_round: dict[int, int],
    folder: Path,
    scorer,
    *,
    log: Callable[[str], None],
    tick: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Train round by round; returns the rounds (round 0 is the base) with their bits/byte."""
    from fedem.adapter.lora import LoraSpec
    from fedem.data import DataSpec, SourceSpec
    from fedem.io import atomic_write_text
    from fedem.merge import MergeSpec, merge_to_dir
    from fedem.train import TrainSpec
    from fedem.train.config import FinetuneConfig
    from fedem.train.jobs import finetune

    sources = tuple(
        SourceSpec(
            path=str(
                atomic_write_text(
                    folder / "data" / f"{lang}.txt", _docs(split.heldout[lang] + split.pool[lang])
                )
            ),
            name=lang,
        )
        for lang in cfg.languages
    )
    h = cfg.hop
    per_step = h.batch_size * h.block_size
    model = base_model
    rounds = [{"round": 0, "checkpoint": None, "relation": "root", "bpb": scorer.model_dir(model, "base")}]
    for r in range(1, cfg.days + 1):
        steps = tokens_by_round.get(r, 0) // per_step
        if steps:
            run = folder / f"round-{r:02d}"
            train = TrainSpec(
                steps=steps, batch_size=h.batch_size, lr=h.lr, warmup_steps=h.warmup_steps, weight_decay=0.0,
                log_every=10_000, save_every=10_000, seed=cfg.seed + r,
            )  # fmt: skip
            data = DataSpec(
                sources=sources, block_size=h.block_size, heldout_fraction=cfg.heldout_fraction,
                heldout_max_blocks=8, replay=0.0,
            )  # fmt: skip
            lora = LoraSpec(r=h.rank, alpha=2 * h.rank)
            ft = FinetuneConfig(base=str(model), name="centralized", contributor="reference", data=data,
                                train=train, lora=lora, output=str(run))  # fmt: skip
            finetune(ft, progress=False, log=log)
            merge_to_dir(model, [run / "adapter"], MergeSpec(), run / "model")
            model = run / "model"
        rounds.append(
            {"round": r, "checkpoint": None, "relation": "none", "steps": steps,
             "bpb": scorer.model_dir(model, f"central-{r}")}
        )  # fmt: skip
        tick(f"centralized round {r}: {steps} steps")
    return rounds
