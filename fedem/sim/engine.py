"""One policy's simulated federation: an event queue on one clock, driving fedem's real steps.

Every step is the code a workflow or a contributor runs, called as a function:

* a session: ``fedem claim`` (:func:`~fedem.registry.contribute.prepare_request`, a real branch
  pushed to the bare remote), the claim workflow's check (:func:`~fedem.registry.claims.run_check_claim`
  on a server repository that only fetched the PR as objects), a relay hop
  (:func:`~fedem.relay.relay_finetune` on ``hub:seshu``, so adapters follow each new base), and
  after ``hop_minutes`` a push (:func:`~fedem.relay.push_adapter`), unless the contributor drops
  out: then nothing is pushed and the lock expires;
* the reconcile cron (:func:`~fedem.registry.ops.reconcile_remote`) on its 5-minute ticks;
* at 23:00 the nightly (:func:`~fedem.nightly.run_nightly`), and on the CPT schedule
  :func:`~fedem.cpt.run_cpt` after it.

Time is simulated: one :class:`~fedem.clock.ManualClock` stamps hub revisions, locks, claims and
tags. Contributors take turns in one process (memory does not grow with their number); training
happens when a session starts, its push is an event ``hop_minutes`` later. Cron ticks at which
nothing can change (no push since, no lock due to expire) are skipped: a reconcile there is a no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import os
import random
import shutil
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from fedem.clock import ManualClock, format_time, parse_time
from fedem.errors import FedemError, RegistryError
from fedem.sim import jobs
from fedem.sim.config import SESSION_GAP, SimConfig
from fedem.sim.world import Contributor, World, adapters_for, add_cpt_data

NIGHT = timedelta(hours=23)
CPT_AT = timedelta(hours=23, minutes=30)
LAST_TRY = timedelta(hours=21)  # a contributor gives up the day's session after this
RETRY = timedelta(minutes=30)
# Events due at the same minute: pushes land first, then the cron sees them, then contributors
# claim (so a relay continues a push made that minute), then the server jobs, then the tally.
ORDER = {"push_hop": 0, "reconcile": 1, "session": 2, "nightly": 3, "cpt": 4, "round": 5}
SALT = "fedem-sim-salt"  # the gate's secret salt; in a simulation nobody is hiding from anyone


@dataclasses.dataclass
class Record:
    """What happened, as plain rows (metrics.json's policy object is built from these)."""

    events: list[dict] = dataclasses.field(default_factory=list)
    locks: list[dict] = dataclasses.field(default_factory=list)
    pushed: list[dict] = dataclasses.field(default_factory=list)
    gate: list[dict] = dataclasses.field(default_factory=list)
    nights: list[dict] = dataclasses.field(default_factory=list)  # head revision after each night
    checkpoints: list[dict] = dataclasses.field(default_factory=list)
    tokens_trained: int = 0
    tokens_pushed: int = 0
    tokens_by_round: dict[int, int] = dataclasses.field(default_factory=dict)  # compute spent each day
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def event(self, at: datetime, kind: str, adapter=None, contributor=None, detail: str = "") -> None:
        self.events.append(
            {
                "time": format_time(at),
                "kind": kind,
                "adapter": adapter,
                "contributor": contributor,
                "detail": detail,
            }
        )

    def add_seconds(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


@contextlib.contextmanager
def gate_secrets(heldout: Path):
    """The nightly's secrets, as the workflow passes them: environment variables, restored after."""
    saved = {k: os.environ.get(k) for k in ("FEDEM_HELDOUT", "FEDEM_GATE_SALT")}
    os.environ["FEDEM_HELDOUT"], os.environ["FEDEM_GATE_SALT"] = str(heldout), SALT
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Federation:
    """Run ``cfg.days`` days of one policy in ``world``; :meth:`run` returns the :class:`Record`."""

    def __init__(self, cfg: SimConfig, world: World, *, tick: Callable[[str], None] = lambda _: None):
        self.cfg, self.world, self.tick = cfg, world, tick
        self.rec = Record()
        self.queue: list[tuple[datetime, int, int, str, tuple]] = []
        self.seq = 0
        self.start = parse_time(cfg.start)
        self.due_reconcile: set[datetime] = set()
        self.hops = 0
        self.log_file = world.folder / "log.txt"  # every job's own lines (memory stays bounded)
        self.cache = world.folder / "cache"

    # -- the queue ----------------------------------------------------------------------------------
    def push(self, at: datetime, kind: str, *args) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, ORDER[kind], self.seq, kind, args))

    def reconcile_at(self, at: datetime) -> None:
        """The first cron tick at or after ``at`` (ticks are every reconcile_minutes from midnight)."""
        step = self.cfg.reconcile_minutes * 60
        secs = (at - self.start).total_seconds()
        tick = self.start + timedelta(seconds=-(-secs // step) * step)
        if tick not in self.due_reconcile:
            self.due_reconcile.add(tick)
            self.push(tick, "reconcile")

    def log(self, line: str) -> None:
        with self.log_file.open("a", encoding="utf-8") as f:
            f.write(f"{format_time(self.world.clock.now())} {line}\n")

    def run(self, root: str) -> Record:
        self.rec.nights.append(
            {"round": 0, "time": format_time(self.start), "checkpoint": root, "relation": "root"}
        )
        self.rec.checkpoints.append(
            {"revision": root, "parent": None, "relation": "root", "round": 0, "merged": []}
        )
        for day in range(self.cfg.days):
            midnight = self.start + timedelta(days=day)
            for who in self.world.contributors:
                for k in range(self.cfg.contributors.hops_per_day):
                    at = midnight + timedelta(minutes=who.minute + k * SESSION_GAP)
                    self.push(at, "session", who, day, k, midnight + LAST_TRY)
            self.push(midnight + NIGHT, "nightly", day + 1)
            if self.cfg.cpt.every_days and (day + 1) % self.cfg.cpt.every_days == 0:
                self.push(midnight + CPT_AT, "cpt", day + 1)
            self.push(midnight + timedelta(hours=23, minutes=59), "round", day + 1)
        while self.queue:
            at, _, _, kind, args = heapq.heappop(self.queue)
            self.world.clock.current = at
            t0 = time.perf_counter()
            getattr(self, f"_{kind}")(at, *args)
            self.rec.add_seconds(kind, time.perf_counter() - t0)
        return self.rec

    # -- contributors -------------------------------------------------------------------------------
    def _session(self, at: datetime, who: Contributor, day: int, k: int, last: datetime) -> None:
        from fedem.registry.claims import ClaimRejected, run_check_claim
        from fedem.registry.contribute import prepare_request

        for name in adapters_for(self.world, who, self.cfg.mode):
            try:
                req = prepare_request(
                    self.world.repo("contributors"), name, who.login, remote=str(self.world.remote),
                    open_pr=False, clock=self.world.clock, gh="/nonexistent/gh",
                )  # fmt: skip
            except RegistryError as err:  # held by someone else: try the next adapter
                self.log(f"{who.login}: {err}")
                continue
            server = self.world.repo("claim-server")
            git_fetch(server, self.world.remote, f"+refs/heads/{req.branch}:refs/pr/head")
            try:
                result = run_check_claim(
                    server, str(self.world.remote), base=req.base, head=req.commit, author=who.login,
                    merge=True, hub=self.world.hub, clock=self.world.clock,
                )  # fmt: skip
            except ClaimRejected as err:
                self.rec.event(at, "claim", name, who.login, f"refused: {err}")
                continue
            finally:
                git_delete_branch(self.world.remote, req.branch)  # GitHub closes the PR
            self._ended(result.events)
            lock = result.adapter.lock
            self.rec.locks.append(
                {"adapter": name, "holder": who.login, "claimed": lock.since, "ended": None, "end": "held",
                 "revision": None, "until": lock.until}
            )  # fmt: skip
            self.rec.event(at, "claim", name, who.login, f"lock until {lock.until}")
            self._hop(at, who, name, day, k, parse_time(lock.until))
            return
        if at + RETRY <= last:
            self.push(at + RETRY, "session", who, day, k, last)
        else:
            self.rec.event(
                at, "claim", None, who.login, "gave up: every adapter it may train was held all day"
            )

    def _hop(self, at: datetime, who: Contributor, name: str, day: int, k: int, until: datetime) -> None:
        from fedem.relay import relay_finetune

        cfg = self.cfg
        self.hops += 1
        out = self.world.folder / "hops" / f"{self.hops:03d}-{who.login}-{name}"
        new = name not in self.world.hub.list_repos() or self.world.hub.head(name) is None
        t0 = time.perf_counter()
        try:
            hop = relay_finetune(
                jobs.hop_config(cfg, self.world, who, name, out, seed=cfg.seed * 10_000 + self.hops), self.world.hub, name, new=new,
                cache_dir=self.cache, progress=False, log=self.log, clock=self.world.clock,
            )  # fmt: skip
        except FedemError as err:
            self.rec.event(at, "dropout", name, who.login, f"the hop failed: {err}")
            self.reconcile_at(until)
            return
        finally:
            self.rec.add_seconds("train", time.perf_counter() - t0)
        self.rec.add_seconds("train_steps", hop.result.seconds)  # the optimisation loop alone
        tokens = cfg.contributors.steps * self.world.tokens_per_step
        self.rec.tokens_trained += tokens
        self.rec.tokens_by_round[day + 1] = self.rec.tokens_by_round.get(day + 1, 0) + tokens
        self.tick(f"day {day + 1}: {who.login} trained {name}")
        forced = f"{who.login}@{day + 1}" in cfg.contributors.drop_sessions and k == 0
        if forced or dropped(cfg.seed, who.login, day, k, cfg.contributors.dropout):
            self.rec.event(at, "dropout", name, who.login, "stopped before pushing; the lock will expire")
            shutil.rmtree(out, ignore_errors=True)
            self.reconcile_at(until)
            return
        self.push(
            at + timedelta(minutes=cfg.contributors.hop_minutes),
            "push_hop",
            who,
            name,
            hop,
            tokens,
            day,
            until,
        )

    def _push_hop(
        self, at: datetime, who: Contributor, name: str, hop, tokens: int, day: int, until: datetime
    ) -> None:
        from fedem.relay import push_adapter

        try:
            rev = push_adapter(self.world.hub, name, hop.adapter_dir, author=who.hub_user)
        except FedemError as err:
            self.rec.event(at, "push", name, who.login, f"refused: {err}")
            self.reconcile_at(until)  # the lock then ends as it would for a dropout
            return
        meta = json.loads((hop.adapter_dir / "fedem.json").read_text())
        follow = (meta.get("follow") or {}).get("kind")
        self.rec.tokens_pushed += tokens
        self.rec.pushed.append(
            {"adapter": name, "revision": rev.id, "parent": rev.parent, "contributor": who.login,
             "languages": list(self.world.adapters[name]), "round": day + 1, "time": format_time(at),
             "base": (meta.get("base") or {}).get("revision"), "follow": follow, "folder": str(hop.adapter_dir)}
        )  # fmt: skip
        detail = f"revision {rev.id[:12]}" + (f" ({follow} onto the new base)" if follow else "")
        self.rec.event(at, "push", name, who.login, detail)
        self.reconcile_at(at)

    # -- the server ---------------------------------------------------------------------------------
    def _reconcile(self, at: datetime) -> None:
        from fedem.registry.ops import reconcile_remote

        self.due_reconcile.discard(at)
        report = reconcile_remote(
            self.world.repo("reconciler"), str(self.world.remote), hub=self.world.hub, clock=ManualClock(at)
        )
        self._ended(report.events)
        if report.events:
            self.rec.event(at, "reconcile", None, None, "; ".join(str(e) for e in report.events))

    def _ended(self, events) -> None:
        for e in events:
            for lock in reversed(self.rec.locks):
                if lock["adapter"] == e.adapter and lock["holder"] == e.holder and lock["end"] == "held":
                    lock.update(
                        ended=e.at, end="pushed" if e.kind == "hop" else "expired", revision=e.revision
                    )
                    if e.kind == "expired":
                        self.rec.event(parse_time(e.at), "expire", e.adapter, e.holder, "lock expired")
                    break

    def _nightly(self, at: datetime, night: int) -> None:
        from fedem.nightly import run_nightly
        from fedem.sim.measure import read_gate_rows

        cfg = jobs.nightly_config(self.cfg, self.world, night)
        with gate_secrets(self.world.heldout):
            outcome = run_nightly(
                cfg, self.world.hub, remote=str(self.world.remote), registry_cache=str(self.world.repo("nightly")),
                clock=self.world.clock, log=self.log, cache_dir=self.cache,
            )  # fmt: skip
        self.rec.gate += read_gate_rows(outcome, Path(cfg.output), night, at)
        if outcome.published is not None:
            rev = outcome.published.revision
            self._checkpoint(rev.id, outcome.checkpoint.id, "merge", night, outcome.published.tag)
            self.rec.event(
                at, "publish", None, None, f"{outcome.published.tag}: merged {self._merged_names(rev.id)}"
            )
        else:
            self.rec.event(at, "nightly", None, None, outcome.reason)
        self.tick(f"night {night}: {outcome.reason if outcome.published is None else outcome.published.tag}")

    def _merged_names(self, rev: str) -> str:
        merged = self.rec.checkpoints[-1]["merged"]
        return ", ".join(f"{m['adapter']}@{m['revision'][:8]}" for m in merged) or "nothing"

    def _checkpoint(self, rev: str, parent: str, relation: str, night: int, tag: str | None) -> None:
        from fedem.sim.measure import merged_entries

        merged = merged_entries(self.world.hub, jobs.REPO, rev) if relation == "merge" else []
        self.rec.checkpoints.append(
            {"revision": rev, "parent": parent, "relation": relation, "round": night, "tag": tag,
             "time": format_time(self.world.clock.now()), "merged": merged}
        )  # fmt: skip

    def _cpt(self, at: datetime, night: int) -> None:
        from fedem.cpt import run_cpt

        runs_left = max(1, (self.cfg.days - night) // self.cfg.cpt.every_days + 1)
        added = add_cpt_data(self.world, 1.0 / runs_left)
        head = self.world.hub.head("seshu").id
        outcome = run_cpt(
            jobs.cpt_config(self.cfg, self.world, night), self.world.hub, progress=False, log=self.log,
            clock=self.world.clock, cache_dir=self.cache,
        )  # fmt: skip
        if outcome.result is not None:
            self.rec.add_seconds("train_steps", outcome.result.seconds)
            tokens = outcome.plan.steps * self.cfg.hop.batch_size * self.cfg.hop.block_size
            self.rec.tokens_trained += tokens
            self.rec.tokens_by_round[night] = self.rec.tokens_by_round.get(night, 0) + tokens
        if outcome.published is not None:
            self._checkpoint(outcome.published.revision.id, head, "cpt", night, outcome.published.tag)
            self.rec.event(at, "cpt", None, None, f"{outcome.published.tag}: {added} new documents")
        else:
            self.rec.event(at, "cpt", None, None, f"not published: {outcome.reason}")

    def _round(self, at: datetime, night: int) -> None:
        head = self.world.hub.head("seshu").id
        relation = next(
            (c["relation"] for c in reversed(self.rec.checkpoints) if c["revision"] == head), "none"
        )
        if head == self.rec.nights[-1]["checkpoint"]:
            relation = "none"
        self.rec.nights.append(
            {"round": night, "time": format_time(at), "checkpoint": head, "relation": relation}
        )


def dropped(seed: int, login: str, day: int, k: int, rate: float) -> bool:
    """Whether this session is abandoned: the same draw for the same session in every policy."""
    return random.Random(zlib.crc32(f"{seed}/{login}/{day}/{k}".encode())).random() < rate


def git_fetch(repo: Path, remote: Path, refspec: str) -> None:
    from fedem.registry.git import Git

    Git(repo).run("fetch", "--quiet", str(remote), refspec)


def git_delete_branch(remote: Path, branch: str) -> None:
    from fedem.registry.git import Git

    Git(remote).run("update-ref", "-d", f"refs/heads/{branch}", check=False)
