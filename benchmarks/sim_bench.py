"""The simulator's overhead: a simulated day (one round) against its training steps alone.

One policy, one simulated day of the demo's federation (6 contributors, the tiny base), no
reference line. The round's wall time covers everything the federation does around training
(claims on git, pulls and validation, pushes, reconcile ticks, the nightly gate, merge and
publish, CPT); "training steps alone" is the optimisation loops' own time in the same run
(:class:`~fedem.train.engine.TrainResult` ``seconds``, summed over the hops and CPT).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def measure() -> dict[str, float]:
    from fedem import config
    from fedem.sim.config import SimConfig
    from fedem.sim.engine import Federation
    from fedem.sim.run import pretrain_base, publish_first_checkpoint, quiet_libraries
    from fedem.sim.world import build_world, split_data

    quiet_libraries()
    cfg = config.load(
        SimConfig, Path("pipelines/simulate.yaml"), {"days": 1, "compare": [], "centralized": False}
    )
    with tempfile.TemporaryDirectory(prefix="fedem-sim-bench-") as tmp:
        split = split_data(cfg)
        base = pretrain_base(cfg, split, Path(tmp) / "base")
        world = build_world(cfg, Path(tmp) / "relay", split)
        root = publish_first_checkpoint(world, base)
        t0 = time.perf_counter()
        rec = Federation(cfg, world).run(root)
        total = time.perf_counter() - t0
    return {**rec.seconds, "day_total": total, "hops": float(len(rec.pushed))}


def report(m: dict[str, float]) -> None:
    from benchmarks.bench import _row

    print(f"== simulator: one simulated day of pipelines/simulate.yaml, {m['hops']:.0f} hops pushed ==")
    _row("simulated round (one day)", m["day_total"], "s", "its training steps alone", m["train_steps"])
    for stage in ("session", "push_hop", "reconcile", "nightly", "cpt"):
        if stage in m:
            _row(f"  events: {stage}", m[stage], "s", "its training steps alone", m["train_steps"])


if __name__ == "__main__":
    report(measure())
