"""``fedem simulate --config``: pretrain the first base, run each policy's federation, the
centralized reference, score everything on the same held-out set, and write the report.

The output folder holds ``config.yaml`` (resolved), ``metrics.json`` (schema:
``fedem/sim/metrics_schema.json``), ``report.md``, ``report.html``, ``plots/`` and, under
``work/``, every policy's hub, registry remote, hops and nightly reports as they were left.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from fedem import config as cfgio
from fedem.clock import ManualClock, format_time, parse_time
from fedem.errors import ConfigError
from fedem.sim.config import SimConfig
from fedem.sim.engine import Federation, Record
from fedem.sim.measure import Scorer
from fedem.sim.world import PUBLISHER, Split, build_world, split_data, write_base_corpus


@dataclasses.dataclass(frozen=True)
class SimResult:
    metrics: dict
    folder: Path


def policies(cfg: SimConfig) -> list[SimConfig]:
    """The run's policies: the config itself, then each ``compare`` entry applied to it."""
    out = [dataclasses.replace(cfg, compare=())]
    base = cfgio.to_dict(dataclasses.replace(cfg, compare=()))
    for p in cfg.compare:
        data = cfgio.to_dict(base)
        for key, value in _dotted(cfgio.to_dict(p.set)):
            if key.split(".")[0] in SHARED or key in SHARED:
                raise ConfigError(
                    f"compare[{p.name}]: {key} is shared by every policy of a run (the data split, the "
                    "first base, the schedule, the report's scoring); run a separate simulation to vary it"
                )
            cfgio._set_path(data, key, value)
        data["name"] = p.name
        try:
            out.append(cfgio.from_dict(SimConfig, data))
        except ConfigError as err:
            raise ConfigError(f"compare[{p.name}]: {err}") from None
    return out


# Fields every policy of one run shares: they shape the world built once from the main config.
SHARED = frozenset(
    {"name", "compare", "centralized", "seed", "start", "days", "languages", "base", "heldout_fraction",
     "eval_max_docs", "hop.block_size", "cpt.every_days"}
)  # fmt: skip


def _dotted(tree: dict, prefix: str = ""):
    """``{gate: {delta: 0.01}}`` as ``("gate.delta", 0.01)``: an override changes only the fields it
    names (a nested mapping merges into the section; it never resets the section's other fields)."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def pretrain_base(cfg: SimConfig, split: Split, folder: Path) -> Path:
    """The first checkpoint's model: ``cfg.base`` on the base's share of each language."""
    from fedem.sim.jobs import pretrain_config
    from fedem.train import pretrain

    files = write_base_corpus(split, folder / "corpus")
    pc = pretrain_config(cfg, files, folder / "pretrain")
    pretrain(pc, progress=False, log=lambda *_: None, clock=ManualClock(parse_time(cfg.start)))
    return folder / "pretrain" / "model"


def run_simulation(cfg: SimConfig, output: Path, *, progress: bool | None = None, log=print) -> SimResult:
    """Run the whole simulation into ``output`` (which must be absent or empty)."""
    from fedem.sim.progress import Progress
    from fedem.sim.report import write_report

    quiet_libraries()
    output = Path(output).absolute()  # git remotes and hub paths must not depend on the cwd
    if output.exists() and any(output.iterdir()):
        raise ConfigError(f"{output}: output folder exists and is not empty; choose a new one")
    runs = policies(cfg)
    work = output / "work"
    work.mkdir(parents=True, exist_ok=True)
    cfgio.dump(cfg, output / "config.yaml")
    split = split_data(cfg)
    total = sum(p.days * (p.contributors.count * p.contributors.hops_per_day + 1) for p in runs)
    total += cfg.days if cfg.centralized else 0
    t_start = time.perf_counter()
    with Progress(total + 1, enabled=progress) as bar:
        base = pretrain_base(cfg, split, work / "base")
        bar.step(f"pretrained the base ({cfg.base.steps} steps)")
        scorer = None
        policy_rows, records, worlds = [], {}, {}
        for p in runs:
            world = worlds[p.name] = build_world(p, work / p.name, split)
            if scorer is None:
                scorer = Scorer(world.heldout, cfg.languages, cfg.eval_max_docs, cfg.gate.max_length)
            root = publish_first_checkpoint(world, base)
            fed = Federation(p, world, tick=bar.step)
            rec = fed.run(root)
            records[p.name] = rec
            policy_rows.append(collect(p, world, rec, scorer))
        reference = None
        if cfg.centralized:
            from fedem.sim.centralized import run_centralized

            t1 = time.perf_counter()
            held = {lang for who in worlds[cfg.name].contributors for lang in who.languages}
            trained = {lang: lang in held for lang in cfg.languages}
            rounds = run_centralized(
                cfg, split, trained, base, records[cfg.name].tokens_by_round, work / "centralized", scorer,
                log=lambda *_: None, tick=bar.step,
            )  # fmt: skip
            tokens = sum(records[cfg.name].tokens_by_round.values())
            policy_rows.append(_centralized_row(cfg, rounds, tokens, time.perf_counter() - t1))
            reference = "centralized"
    metrics = {
        "schema_version": 1,
        "created": policy_rows[0]["rounds"][-1]["time"],
        "config": cfgio.to_dict(cfg),
        "versions": _versions(),
        "languages": list(cfg.languages),
        "reference": reference,
        "policies": policy_rows,
        "comparison": comparison(policy_rows, reference, cfg.languages),
    }
    metrics["seconds"] = round(time.perf_counter() - t_start, 2)
    write_report(metrics, output)
    return SimResult(metrics, output)


def quiet_libraries() -> None:
    """Hundreds of model loads: their per-load bars and deprecation notes would bury the progress."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")


def publish_first_checkpoint(world, base: Path) -> str:
    from fedem.publish.checkpoint import publish_root

    return publish_root(world.hub, base, author=PUBLISHER, clock=world.clock).revision.id


def collect(cfg: SimConfig, world, rec: Record, scorer: Scorer) -> dict:
    """One policy's object of metrics.json, with every figure scored on the same held-out set."""
    cache = world.folder / "cache"
    t0 = time.perf_counter()
    tags = {c["revision"]: c.get("tag") for c in rec.checkpoints}
    rounds = [
        {"round": n["round"], "time": n["time"], "checkpoint": n["checkpoint"], "tag": tags.get(n["checkpoint"]),
         "relation": n["relation"], "bpb": scorer.checkpoint(world.hub, n["checkpoint"], cache)}
        for n in rec.nights
    ]  # fmt: skip
    adapters = []
    for p in rec.pushed:
        row = {k: v for k, v in p.items() if k not in ("folder", "languages")}
        row["language"] = "+".join(p["languages"])
        row["bpb"] = scorer.adapter(world.hub, p["base"], Path(p["folder"]), p["languages"], cache)
        adapters.append(row)
    rec.add_seconds("score", time.perf_counter() - t0)
    return {
        "name": cfg.name,
        "mode": cfg.mode,
        "description": describe(cfg),
        "tokens_trained": rec.tokens_trained,
        "tokens_pushed": rec.tokens_pushed,
        "rounds": rounds,
        "adapters": adapters,
        "checkpoints": [
            {**c, "tag": c.get("tag"), "time": c.get("time", rounds[0]["time"])} for c in rec.checkpoints
        ],
        "locks": [{k: v for k, v in lock.items() if k != "until"} for lock in rec.locks],
        "gate": rec.gate,
        "credit": credit(rec),
        "events": rec.events,
        "seconds": {k: round(v, 2) for k, v in rec.seconds.items()},
    }


def describe(cfg: SimConfig) -> str:
    what = {"relay": "relay + nightly merge", "independent": "independent adapters merged nightly"}[cfg.mode]
    c = cfg.contributors
    return (
        f"{what} ({cfg.merge.method}); {c.count} contributors, {c.split.replace('_', ' ')}, "
        f"dropout {c.dropout:g}, gate δ={cfg.gate.delta:g}"
    )


def credit(rec: Record) -> list[dict]:
    """Per contributor: hops pushed, hops merged, and the bits/byte its merged hops earned
    (each merged adapter's leave-one-out gain, summed over languages, shared by its hops)."""
    by_rev = {p["revision"]: p["contributor"] for p in rec.pushed}
    hops, merged, gain = defaultdict(int), defaultdict(int), defaultdict(float)
    for p in rec.pushed:
        hops[p["contributor"]] += 1
    for ckpt in rec.checkpoints:
        for m in ckpt["merged"]:
            owners = [by_rev[h] for h in m["hops"] if h in by_rev]
            for who in owners:
                merged[who] += 1
                gain[who] += -sum(m["credit"].values()) / max(1, len(owners))
    return [
        {"contributor": who, "bpb": round(gain[who], 6), "hops": hops[who], "merged_hops": merged[who]}
        for who in sorted(hops)
    ]


def _centralized_row(cfg: SimConfig, rounds: list[dict], tokens: int, seconds: float) -> dict:
    start = parse_time(cfg.start)
    for r in rounds:
        r["time"] = format_time(
            start + timedelta(days=r["round"] - 1, hours=23, minutes=59) if r["round"] else start
        )
        r["tag"] = None
        r.pop("steps", None)
    return {
        "name": "centralized", "mode": "centralized",
        "description": "centralized LoRA on the union of the shards, the same tokens, merged each round",
        "tokens_trained": tokens, "tokens_pushed": tokens, "rounds": rounds, "adapters": [],
        "checkpoints": [], "locks": [], "gate": [], "credit": [], "events": [],
        "seconds": {"total": round(seconds, 2)},
    }  # fmt: skip


def comparison(rows: list[dict], reference: str | None, languages) -> list[dict]:
    """Each policy's final bits/byte per language against the reference's, as a ratio."""
    ref = next((r for r in rows if r["name"] == reference), None)
    if ref is None:
        return []
    final = ref["rounds"][-1]["bpb"]
    return [
        {"policy": r["name"], "language": lang, "bpb": r["rounds"][-1]["bpb"][lang], "reference": final[lang],
         "ratio": round(r["rounds"][-1]["bpb"][lang] / final[lang], 4)}
        for r in rows if r["name"] != reference for lang in languages
    ]  # fmt: skip


def _versions() -> dict:
    from fedem.provenance import environment

    env = environment()
    libs = env.get("versions", env)
    return {k: str(v) for k, v in libs.items() if isinstance(v, (str, int, float))}


def summary(result: SimResult) -> str:
    """The one-screen summary printed at the end of ``fedem simulate``."""
    from fedem.sim.report import summary_lines

    return "\n".join([*summary_lines(result.metrics), f"report: {result.folder / 'report.html'}"])
