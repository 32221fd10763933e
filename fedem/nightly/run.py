"""``fedem nightly``: gate the hops not yet merged, merge the accepted ones, publish, mark.

1. **read**: the newest checkpoint, its chain's merge records (:mod:`fedem.publish.history`)
   and the registry; plan the night (:mod:`fedem.nightly.plan`). Hops a published checkpoint
   lists but the registry has not marked are repaired first (a job that died after publishing);
2. **pull**: the checkpoint, and each candidate's revision (validated; one trained on an older
   checkpoint waits for its next hop, which follows the new base);
3. **gate**: single-blind (:func:`fedem.gate.run.run_gate`); names are joined afterwards;
4. **merge**: the accepted adapters, streamed into a new model folder (:mod:`fedem.merge`);
5. **score**: the merged model against the checkpoint on the night's sample; it must pass the
   gate's no-regression rule on every language, or nothing is published. Each accepted
   adapter's credit is its leave-one-out Δ;
6. **publish**: the merged folder, its card and a record listing every merged adapter revision
   and the hops it carried, onto the checkpoint (compare-and-swap), tagged ``seshu-YYYYMMDD``;
7. **mark**: ``merged_into`` on the merged hops and ``rejected_on`` on the rejected ones, in one
   compare-and-swap commit on the registry branch.

All or nothing: the hub's record is the truth and the marks derive from it, so a kill before
the publish leaves hub and registry as they were, and a kill after it is repaired by the next
run. ``--dry-run`` runs steps 1-5 in a scratch folder and prints what would be published and
marked; it writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fedem import config as cfgio
from fedem.clock import SYSTEM_CLOCK, Clock, now_utc
from fedem.errors import ConfigError
from fedem.gate.decide import REASONS
from fedem.gate.policy import GatePolicy, read_salt
from fedem.gate.run import compare_night, draw_night, run_gate, score_night
from fedem.hub import Hub, Revision, default_hub_url, open_hub
from fedem.io import atomic_write_json, pause_for_test
from fedem.nightly.candidates import pull_candidates, recent_merged
from fedem.nightly.config import NightlyConfig
from fedem.nightly.plan import NightPlan, format_plan, marks, plan_night
from fedem.nightly.record import build_checkpoint
from fedem.publish import Published, latest_checkpoint, publish_checkpoint, pull_checkpoint
from fedem.publish.history import read_history
from fedem.registry.model import dump_adapter
from fedem.registry.store import Decision, GitStore
from fedem.table import format_table

REPORT = "nightly-report.json"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One candidate's outcome tonight, with its name joined after the gate decided."""

    adapter: str
    revision: str
    decision: str  # accept | reject | wait
    reason: str | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NightlyOutcome:
    """What a nightly did. ``published`` is None when nothing was published; ``reason`` says why."""

    checkpoint: Revision
    plan: NightPlan
    reason: str
    verdicts: tuple[Verdict, ...] = ()
    published: Published | None = None
    marked: int = 0
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    languages: Mapping[str, dict] = dataclasses.field(default_factory=dict)  # merged vs checkpoint


class _Stages:
    """Wall time per stage, for the summary and ``make bench`` (measured, never decided on)."""

    def __init__(self, log):
        self.seconds: dict[str, float] = {}
        self.log = log

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.log(f"[{name}]")
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def _remote(cfg: NightlyConfig, remote: str | None) -> str:
    remote = remote or cfg.registry.remote or os.environ.get("FEDEM_REGISTRY_REMOTE")
    if not remote:
        raise ConfigError(
            "registry.remote: not set; give --remote, set it in the config or $FEDEM_REGISTRY_REMOTE"
        )
    return remote


def _store(cfg: NightlyConfig, remote: str | None, cache: str | None, clock: Clock) -> GitStore:
    return GitStore(cache or cfg.registry.cache, _remote(cfg, remote), cfg.registry.branch, clock=clock)


def _mark(store: GitStore, merged, rejected, message: str) -> int:
    """One compare-and-swap commit of the marks, decided again on the fresh branch each attempt."""

    def decide(snap) -> Decision:
        changed = marks(snap.adapters, merged, rejected)
        files = {a.path: dump_adapter(a).encode() for a in changed.values()}
        return Decision(files, message, len(changed))

    outcome = store.transact(decide)
    return outcome.decision.result if outcome.commit else 0


def run_nightly(
    cfg: NightlyConfig,
    hub: str | Hub | None = None,
    *,
    remote: str | None = None,
    registry_cache: str | None = None,
    dry_run: bool = False,
    clock: Clock | None = None,
    log: Callable[[str], None] = print,
    cache_dir: str | Path | None = None,
) -> NightlyOutcome:
    """Run one night as configured; see the module docstring for the steps."""
    clock = clock or SYSTEM_CLOCK
    hub = hub if isinstance(hub, Hub) else open_hub(hub or cfg.hub or default_hub_url())
    stages = _Stages(log)
    day = now_utc(clock).date()
    _remote(cfg, remote)  # refuse a missing remote before anything is read
    if not dry_run:
        read_salt(cfg.gate)  # refuse now, before anything is read or written

    with stages("read"):
        head = latest_checkpoint(hub, cfg.repo)
        history = read_history(hub, cfg.repo, head)
        store = _store(cfg, remote, registry_cache, clock)  # creates the local cache: after the hub checks
        snap = store.snapshot()
        plan = plan_night(snap.adapters, history)
    log(f"nightly {day.isoformat()}: checkpoint {cfg.repo}@{head.id[:12]} on {hub.url}")
    log(format_plan(plan))
    outcome = dict(checkpoint=head, plan=plan, timings=stages.seconds)

    marked = 0
    if plan.repairs and not dry_run:
        with stages("mark"):
            marked = _mark(
                store, plan.repairs, None, "nightly: repair merged_into from the checkpoint records"
            )
        log(f"repaired {marked} adapter file{'s' if marked != 1 else ''} from the hub's records")
    if not plan.candidates:
        reason = "nothing new: no hop waiting to be gated; nothing published"
        log(reason)
        return _finish(cfg, dry_run, NightlyOutcome(reason=reason, marked=marked, **outcome), log)

    out = Path(cfg.output)
    with contextlib.ExitStack() as stack:
        if dry_run:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fedem-nightly-")))
        else:
            out.mkdir(parents=True, exist_ok=True)
            cfgio.dump(cfg, out / "config.yaml")
            work = out / "work"  # this job's own scratch, rebuilt on every run
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
        with stages("pull"):
            ckpt = pull_checkpoint(hub, cfg.repo, head.id, cache_dir=cache_dir)
            subs, waiting, invalid = pull_candidates(
                hub, plan.candidates, ckpt.record.weights_sha256, work, cfg, history
            )
            merged_deltas = recent_merged(hub, history, snap.adapters, work, cfg)
        gated = [c for c in plan.candidates if c.name not in waiting and c.name not in invalid]
        verdicts = [
            Verdict(c.name, c.revision, "wait", None, waiting[c.name])
            for c in plan.candidates
            if c.name in waiting
        ]
        verdicts += [
            Verdict(c.name, c.revision, "reject", *invalid[c.name])
            for c in plan.candidates
            if c.name in invalid
        ]
        rejected = [c for c in plan.candidates if c.name in invalid]
        if not subs:
            reason = "nothing to gate: every candidate waits or failed validation; nothing published"
            marked += _record_rejections(
                store, {c.name: {c.hops[-1]: head.id} for c in rejected}, head, dry_run, stages
            )
            log(reason)
            return _finish(
                cfg,
                dry_run,
                NightlyOutcome(reason=reason, verdicts=tuple(verdicts), marked=marked, **outcome),
                log,
            )

        with stages("gate"):
            night, ref = _reference(ckpt.folder, cfg.gate, day)
            report = run_gate(
                ckpt.folder,
                subs,
                cfg.gate,
                day=day,
                output=work / "gate-report.json",
                log=log,
                reference=ref,
                merged_deltas=merged_deltas,
            )
        accepted = []
        for c, sub, d in zip(gated, subs, report["candidates"], strict=True):
            if d["decision"] == "accept":
                accepted.append((c, sub))
                verdicts.append(Verdict(c.name, c.revision, "accept"))
            else:
                rejected.append(c)
                verdicts.append(Verdict(c.name, c.revision, "reject", d["reason"], d.get("detail", "")))
        rejected_marks = {c.name: {c.hops[-1]: head.id} for c in rejected}
        base = dict(verdicts=tuple(verdicts), **outcome)
        if not accepted:
            reason = "no candidate passed the gate; nothing published"
            marked += _record_rejections(store, rejected_marks, head, dry_run, stages)
            log(reason)
            return _finish(cfg, dry_run, NightlyOutcome(reason=reason, marked=marked, **base), log)

        with stages("merge"):
            from fedem.merge import merge_to_dir

            merged_dir = work / "merged"
            merge_to_dir(
                ckpt.folder,
                [s.folder for _, s in accepted],
                cfg.merge,
                merged_dir,
                revisions=[c.revision for c, _ in accepted],
            )
        pause_for_test("nightly-merged")
        with stages("score"):
            langs, credit = _score(ckpt.folder, merged_dir, [s.folder for _, s in accepted], cfg, night, ref)
        regressed = [k for k, c in langs.items() if c.hi > cfg.gate.delta]
        table = _languages_table(langs)
        log(table)
        figures = {k: c.as_dict() for k, c in langs.items()}
        if regressed:
            reason = (
                f"the merged model regresses beyond delta={cfg.gate.delta} on {', '.join(regressed)}; "
                "nothing published"
            )
            log(reason)
            return _finish(
                cfg, dry_run, NightlyOutcome(reason=reason, marked=marked, languages=figures, **base), log
            )

        folder = build_checkpoint(
            work / "checkpoint",
            merged_dir,
            hub=hub,
            cfg=cfg,
            head=head,
            accepted=[(c, s.folder) for c, s in accepted],
            langs=langs,
            credit=credit,
            day=day,
            clock=clock,
        )
        names = ", ".join(f"{c.name}@{c.revision[:12]}" for c, _ in accepted)
        if dry_run:
            hops = sum(len(c.hops) for c, _ in accepted)
            reason = (
                f"dry run: would publish a merge of {names} onto {cfg.repo}@{head.id[:12]} and mark "
                f"{hops} hop{'s' if hops != 1 else ''} merged; nothing written"
            )
            log(reason)
            return _finish(cfg, dry_run, NightlyOutcome(reason=reason, languages=figures, **base), log)

        with stages("publish"):
            message = f"nightly {day.isoformat()}: {cfg.merge.method} merge of {names}"
            published = publish_checkpoint(
                hub, cfg.repo, folder, message=message, author=cfg.author, clock=clock
            )
        log(f"published {cfg.repo}@{published.revision.id} as {published.tag}")
        pause_for_test("nightly-published")
        with stages("mark"):
            merged_marks = {c.name: dict.fromkeys(c.hops, published.revision.id) for c, _ in accepted}
            message = f"nightly: merged {names} into {cfg.repo}@{published.revision.id}"
            if rejected_marks:
                message += f"; rejected on {head.id[:12]}: " + ", ".join(rejected_marks)
            marked += _mark(store, merged_marks, rejected_marks, message)
        reason = f"published {published.tag}: {len(accepted)} of {len(subs)} gated adapters merged"
        return _finish(
            cfg,
            dry_run,
            NightlyOutcome(reason=reason, published=published, marked=marked, languages=figures, **base),
            log,
        )


def _record_rejections(store, rejected_marks, head, dry_run, stages) -> int:
    if dry_run or not rejected_marks:
        return 0
    with stages("mark"):
        return _mark(
            store, {}, rejected_marks, f"nightly: rejected on {head.id[:12]}: " + ", ".join(rejected_marks)
        )


def _reference(base_dir: Path, policy: GatePolicy, day):
    """The night's sample and the checkpoint's scores on it: scored once, for the gate and the merge."""
    from fedem.evaluate.heldout import heldout_from_env
    from fedem.model import load_model

    night = draw_night(policy, day, heldout_from_env(policy.heldout_env), read_salt(policy))
    return night, score_night(load_model(base_dir), night, policy)


def _score(base_dir: Path, merged_dir: Path, adapters: Sequence[Path], cfg: NightlyConfig, night, ref):
    """The merged model vs the checkpoint per language, and each adapter's leave-one-out credit.

    Credit of adapter k: bpb(all merged) - bpb(all but k), on the same sample (negative: k helps).
    With one adapter, "all but k" is the checkpoint itself.
    """
    from fedem.merge import merge_into_model
    from fedem.model import load_model

    policy: GatePolicy = cfg.gate
    full = score_night(load_model(merged_dir), night, policy)
    langs = compare_night(ref, full, night, policy)
    if len(adapters) == 1:
        return langs, [langs]
    credit = []
    for k in range(len(adapters)):
        model = load_model(base_dir)
        merge_into_model(model, [a for i, a in enumerate(adapters) if i != k], cfg.merge)
        credit.append(compare_night(score_night(model, night, policy), full, night, policy))
        del model
    return langs, credit


def _languages_table(langs: Mapping) -> str:
    rows = [
        [
            k,
            f"{c.reference_bpb:.4f}",
            f"{c.candidate_bpb:.4f}",
            f"{c.delta:+.4f}",
            f"[{c.lo:+.4f}, {c.hi:+.4f}]",
        ]
        for k, c in langs.items()
    ]
    return format_table(["language", "checkpoint", "merged", "Δ bpb", "CI"], rows)


def _finish(cfg: NightlyConfig, dry_run: bool, outcome: NightlyOutcome, log) -> NightlyOutcome:
    """Print the summary; write the report (not on a dry run). Reasons name the gate's rule."""
    rows = [
        [v.adapter, v.revision[:12], v.decision, v.reason or "", REASONS.get(v.reason or "", v.detail)]
        for v in outcome.verdicts
    ]
    if rows:
        log(format_table(["adapter", "revision", "decision", "reason", "meaning"], rows))
    times = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.timings.items())
    log(f"summary: {outcome.reason}" + (f" ({times})" if times else ""))
    if not dry_run:
        Path(cfg.output).mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            Path(cfg.output) / REPORT,
            {
                "kind": "fedem-nightly-report",
                "version": 1,
                "checkpoint": outcome.checkpoint.id,
                "published": outcome.published.revision.id if outcome.published else None,
                "tag": outcome.published.tag if outcome.published else None,
                "reason": outcome.reason,
                "verdicts": [v.as_dict() for v in outcome.verdicts],
                "languages": dict(outcome.languages),
                "marked": outcome.marked,
                "seconds": dict(outcome.timings),
                "config": cfgio.to_dict(cfg),
                **_env(),
            },
        )
    return outcome


def _env() -> dict:
    from fedem.provenance import environment

    return environment()
