"""``fedem simulate --registry-only``: the claim registry at scale, on a simulated clock.

The real server code runs against a real bare git remote: every claim is a pull request
whose job calls :func:`fedem.registry.claims.run_check_claim` (``--merge``, with the hub),
and every ``reconcile_every_minutes`` the real :func:`fedem.registry.ops.reconcile_remote`
runs. Jobs that overlap in simulated time (queued on at most ``concurrency`` runners, each
``job_seconds`` long) run at once in threads, each in its own repository like a runner's
checkout, so their pushes really race and the compare-and-swap really retries.

Time: :class:`fedem.clock.ManualClock` only. The simulation's clock stamps hub revisions and
orders events; each job gets a clock stopped at its own instant (each runner has its own
clock). A hub revision or a reconcile at simulated time ``t`` happens once every job stamped
before ``t`` is done and before any job stamped after it starts, except that a reconcile
overlaps the batch of jobs right after it, as the cron races claim jobs on GitHub. Wall time
is only measured, never used to decide anything.

Memory stays bounded: jobs are generated lazily, figures go into fixed-size histograms,
accepted claims into a constant-size tally (and a log on disk), and the invariant check
(:mod:`fedem.sim.registry_check`) keeps one entry per adapter and login.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fedem.clock import ManualClock, format_time
from fedem.config import to_dict
from fedem.errors import ConflictError, FedemError
from fedem.io import atomic_write_json, atomic_write_yaml
from fedem.registry.claims import ClaimRejected, run_check_claim
from fedem.registry.git import Git, ensure_repo
from fedem.registry.ops import reconcile_remote
from fedem.registry.store import ParseCache
from fedem.sim.registry_check import Hold, HoldTally, InvariantReport, check_history
from fedem.sim.registry_config import RegistrySimConfig
from fedem.sim.registry_world import Job, World, build_world, jobs, open_pull_request, publish
from fedem.sim.stats import LogHistogram

# ClaimRejected messages, by the rule that refused the claim (for the report only).
_REASONS = (("already held", "held"), ("the cap is", "cap"), ("cool-down", "cooldown"))


class _Figures:
    """What the run measures, in memory that does not grow with the number of claims."""

    def __init__(self) -> None:
        self.latency = LogHistogram()  # simulated seconds, claim PR opened -> lock stamped
        self.queue = LogHistogram()  # simulated seconds waiting for a free runner
        self.job_wall = LogHistogram()  # wall seconds of one run_check_claim
        self.reconcile_wall = LogHistogram()
        self.outcomes: Counter[str] = Counter()
        self.job_retries = 0
        self.jobs_retried = 0
        self.max_job_retries = 0
        self.reconcile_runs = 0
        self.reconcile_retries = 0
        self.events: Counter[str] = Counter()
        self.publishes = 0
        self.batches = 0
        self.max_batch = 0
        self.errors: list[str] = []


class _Retries:
    """The store's ``sleep``: the store sleeps exactly once per lost push race, so count them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, seconds: float) -> None:
        self.count += 1
        time.sleep(seconds)


class _Sim:
    def __init__(
        self, cfg: RegistrySimConfig, world: World, workdir: Path, progress: Callable[[float, str], None]
    ):
        self.cfg, self.world, self.progress = cfg, world, progress
        self.remote = str(world.remote)
        self.cache = ParseCache(max_entries=4 * cfg.adapters + 1024)
        self.runners = [ensure_repo(workdir / "runners" / f"r{k:03d}.git") for k in range(cfg.concurrency)]
        self.reconciler = workdir / "reconciler.git"
        self.fig = _Figures()
        self.accepted = HoldTally()
        self.claim_log = (workdir / "accepted.jsonl").open("w")
        self.events: list[tuple[datetime, int, str, tuple]] = []  # heap: (time, seq, kind, args)
        self.seq = itertools.count()
        self.rng = random.Random(cfg.seed ^ 0x5EED)
        self.ttl = timedelta(minutes=cfg.ttl_minutes)
        self.end = world.start + timedelta(hours=cfg.hours)
        self.tick = timedelta(minutes=cfg.reconcile_every_minutes)
        self._push(world.start + self.tick, "reconcile", ())
        self.pool = ThreadPoolExecutor(max_workers=cfg.concurrency + 1, thread_name_prefix="runner")

    def _push(self, at: datetime, kind: str, args: tuple) -> None:
        heapq.heappush(self.events, (at, next(self.seq), kind, args))

    # -- the event loop ---------------------------------------------------------------------------
    def run(self) -> datetime:
        stream = _batches(jobs(self.cfg, self.world), self.cfg.concurrency)
        last = self.world.start
        for batch in stream:
            first = batch[0].stamped
            self._run_batch(batch, self._due(first))
            last = max(last, batch[-1].stamped)
            self.progress((first - self.world.start).total_seconds(), self._postfix())
        # After the last job: what is due up to the end of the day, then one closing reconcile.
        final = max(self.end, last)
        for job in self._due(final):
            self._event(job)
        self._reconcile(final)
        self.pool.shutdown()
        self.claim_log.close()
        return final

    def _due(self, until: datetime) -> list[tuple]:
        due = []
        while self.events and self.events[0][0] <= until:
            due.append(heapq.heappop(self.events))
        return due

    def _run_batch(self, batch: list[Job], due: list[tuple]) -> None:
        # Events due before the batch, in time order; the last reconcile among them runs
        # alongside the batch (its clock is at or before every job's), and revisions due after
        # that reconcile are written once both are done (no job or run stamped earlier sees them).
        last_r = max((i for i, e in enumerate(due) if e[2] == "reconcile"), default=None)
        before = due if last_r is None else due[:last_r]
        after = [] if last_r is None else due[last_r + 1 :]
        for event in before:
            self._event(event)
        futures: list[tuple[Job, Future]] = [
            (job, self.pool.submit(self._job, self.runners[k], job)) for k, job in enumerate(batch)
        ]
        if last_r is not None:
            self._event(due[last_r])
        for job, future in futures:
            self._record(job, *future.result())
        for event in after:
            self._event(event)
        self.fig.batches += 1
        self.fig.max_batch = max(self.fig.max_batch, len(batch))

    def _event(self, event: tuple) -> None:
        at, _, kind, args = event
        if kind == "reconcile":
            self._reconcile(at)
            if at + self.tick <= self.end:
                self._push(at + self.tick, "reconcile", ())
        else:
            repo, login = args
            publish(self.world, repo, login, at)
            self.fig.publishes += 1

    # -- the real code ----------------------------------------------------------------------------
    def _job(self, git: Git, job: Job) -> tuple[str, Any, float, int]:
        base, head = open_pull_request(git, self.remote, job)
        retries = _Retries()
        t0 = time.perf_counter()
        try:
            result = run_check_claim(
                git.repo, self.remote, base=base, head=head, author=job.login, pr=job.pr, merge=True,
                hub=self.world.hub, clock=ManualClock(job.stamped), cache=self.cache, sleep=retries,
                rng=random.Random(job.pr),
            )  # fmt: skip
            outcome: tuple[str, Any] = ("accepted", result)
        except ClaimRejected as err:
            outcome = (next((r for m, r in _REASONS if m in str(err)), "other"), str(err))
        except ConflictError as err:
            outcome = ("gave_up", str(err))
        except FedemError as err:
            outcome = ("error", str(err))
        wall = time.perf_counter() - t0
        git.run("update-ref", "-d", f"refs/pull/{job.pr}/head", check=False)
        return (*outcome, wall, retries.count)

    def _reconcile(self, at: datetime) -> None:
        retries = _Retries()
        t0 = time.perf_counter()
        try:
            report = reconcile_remote(
                self.reconciler, self.remote, hub=self.world.hub, clock=ManualClock(at), cache=self.cache,
                sleep=retries, rng=random.Random(at.timestamp()),
            )  # fmt: skip
        except FedemError as err:
            self.fig.outcomes["reconcile_failed"] += 1
            self._error(f"reconcile at {format_time(at)}: {err}")
            return
        finally:
            self.fig.reconcile_wall.add(time.perf_counter() - t0)
            self.fig.reconcile_runs += 1
            self.fig.reconcile_retries += retries.count
        self.fig.events.update(e.kind for e in report.events)
        for problem in report.errors:
            self._error(f"reconcile at {format_time(at)}: {problem}")

    def _record(self, job: Job, kind: str, value: Any, wall: float, retries: int) -> None:
        fig = self.fig
        fig.outcomes[kind] += 1
        fig.job_wall.add(wall)
        fig.queue.add(max((job.started - job.opened).total_seconds(), 1e-6))
        fig.job_retries += retries
        fig.jobs_retried += retries > 0
        fig.max_job_retries = max(fig.max_job_retries, retries)
        if kind in ("error", "gave_up"):
            self._error(f"claim #{job.pr}: {value}")
        if kind != "accepted":
            return
        lock = value.adapter.lock
        fig.latency.add((lock.since_at - job.opened).total_seconds())
        fig.events.update(e.kind for e in value.events)
        self.accepted.add(Hold(job.adapter, lock.holder, lock.since_at))
        rec = {"pr": job.pr, "adapter": job.adapter, "holder": lock.holder, "since": lock.since}
        self.claim_log.write(json.dumps(rec) + "\n")
        if self.rng.random() < self.cfg.publish_fraction:
            at = lock.since_at + self.ttl * self.rng.uniform(0.05, 0.95)
            self._push(at.replace(microsecond=0), "publish", (value.adapter.hub_repo, lock.holder))

    def _error(self, text: str) -> None:
        if len(self.fig.errors) < 20:
            self.fig.errors.append(text)

    def _postfix(self) -> str:
        o = self.fig.outcomes
        return f"claims={sum(o.values()) - o['reconcile_failed']:,} accepted={o['accepted']:,} retries={self.fig.job_retries:,}"


def _batches(stream: Iterator[Job], cap: int) -> Iterator[list[Job]]:
    """Jobs that run at the same time in simulated time: each batch holds the jobs that start
    before its first job's lock is stamped (at most ``cap``: one per runner)."""
    pending: Job | None = None
    while True:
        first = pending or next(stream, None)
        if first is None:
            return
        batch, pending = [first], None
        for job in stream:
            if job.started < first.stamped and len(batch) < cap:
                batch.append(job)
            else:
                pending = job
                break
        yield batch


@dataclasses.dataclass(frozen=True)
class ScaleReport:
    metrics: dict[str, Any]
    invariants: InvariantReport
    out_dir: Path

    @property
    def ok(self) -> bool:
        return self.invariants.ok


def run_registry_scale(
    cfg: RegistrySimConfig,
    out_dir: str | Path,
    *,
    workdir: str | Path | None = None,
    progress: bool | None = None,
) -> ScaleReport:
    """Run the simulation; write ``config.yaml`` and ``metrics.json`` to ``out_dir``.

    ``workdir`` (default ``out_dir/work``, which must not exist yet) holds the bare remote, the
    hub, the runners' repositories and the log of accepted claims; it is kept for inspection.
    """
    from fedem.sim.registry_report import build_metrics

    out_dir = Path(out_dir)
    workdir = Path(workdir) if workdir is not None else out_dir / "work"
    if workdir.exists() and any(workdir.iterdir()):
        raise FileExistsError(f"{workdir} is not empty; give a new --output (or --workdir)")
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_yaml(out_dir / "config.yaml", to_dict(cfg))
    t0 = time.perf_counter()
    world = build_world(cfg, workdir)
    setup_s = time.perf_counter() - t0
    with _progress_bar(cfg, progress) as bar:
        sim = _Sim(cfg, world, workdir, bar)
        t1 = time.perf_counter()
        final = sim.run()
        run_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    invariants = check_history(
        world.remote, sim.accepted, max_holds=cfg.max_holds, claim_log=workdir / "accepted.jsonl"
    )
    check_s = time.perf_counter() - t2
    timing = {"setup_s": setup_s, "run_s": run_s, "check_s": check_s, "sim_end": format_time(final)}
    metrics = build_metrics(cfg, sim.fig, invariants, timing)
    atomic_write_json(out_dir / "metrics.json", metrics)
    return ScaleReport(metrics, invariants, out_dir)


class _progress_bar:
    """tqdm over simulated time on stderr (``enabled`` None: on a terminal only); a no-op without tqdm."""

    def __init__(self, cfg: RegistrySimConfig, enabled: bool):
        self.total = int(cfg.hours * 3600)
        self.enabled = enabled
        self.bar = None
        self.done = 0

    def __enter__(self) -> Callable[[float, str], None]:
        if self.enabled is not False:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=self.total, unit="sim-s", desc="registry", dynamic_ncols=True,
                    disable=None if self.enabled is None else False, mininterval=2.0,
                )  # fmt: skip
        return self.update

    def update(self, seconds: float, postfix: str) -> None:
        if self.bar is None:
            return
        now = min(int(seconds), self.total)
        if now > self.done:
            self.bar.update(now - self.done)
            self.done = now
        self.bar.set_postfix_str(postfix, refresh=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.update(self.total - self.done)
            self.bar.close()


def summary(report: ScaleReport) -> str:
    """The summary table of a finished run (:func:`fedem.sim.registry_report.summary_table`)."""
    from fedem.sim.registry_report import summary_table

    return summary_table(report.metrics)
