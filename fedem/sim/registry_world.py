"""The simulated world around the registry: the catalogue on a bare remote, a ``file://`` hub,
the contributors, and the stream of claim jobs as GitHub would queue them.

Everything here is the *outside* of the code under test: it plays maintainers (the catalogue
and the policy), contributors (claim pull requests, hub revisions) and GitHub (runners that
start a queued job when one is free). Time is simulated; the workload comes from one seed.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from fedem.clock import ManualClock, parse_time
from fedem.errors import ConfigError
from fedem.hub.filehub import FileHub
from fedem.io import atomic_write_json
from fedem.registry.git import Git, ensure_repo
from fedem.registry.model import (
    MAX_FILE_BYTES,
    POLICY_PATH,
    Adapter,
    Lock,
    Spec,
    adapter_path,
    dump_adapter,
    parse_adapter,
)
from fedem.registry.ops import init_registry
from fedem.registry.store import DEFAULT_BRANCH
from fedem.sim.registry_config import RegistrySimConfig

MAINTAINER = "fedem-sim-maintainer <maintainer@fedem.invalid>"
_SPEC = Spec(base_model="seshu-base", targets=("in_proj",), rank=16, languages=("hi",))


def adapter_names(n: int) -> list[str]:
    width = len(str(n - 1))
    return [f"a{i:0{width}d}" for i in range(n)]


def logins(n: int) -> list[str]:
    return [f"c{i:04d}" for i in range(n)]


def policy_text(cfg: RegistrySimConfig) -> str:
    """registry/policy.yaml with every contributor's hub account mapped (same spelling)."""
    ids = "".join(f"  {u}: [{u}]\n" for u in logins(cfg.contributors))
    text = (
        f"ttl_minutes: {cfg.ttl_minutes}\nmax_holds: {cfg.max_holds}\n"
        f"cooldown_minutes: {cfg.cooldown_minutes}\nmaintainers: []\nidentities:\n{ids}"
    )
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ConfigError(
            f"contributors: {cfg.contributors:,} identities make {POLICY_PATH} {len(text):,} bytes, "
            f"over its cap of {MAX_FILE_BYTES:,}"
        )
    return text


@dataclasses.dataclass(frozen=True)
class World:
    remote: Path  # the bare remote holding the registry branch (GitHub's repository)
    hub: FileHub  # where holders publish; stamped by the simulation's clock
    clock: ManualClock  # the simulation's clock: hub revisions, schedule
    start: datetime
    names: tuple[str, ...]
    logins: tuple[str, ...]
    revision: Path  # the folder each simulated hub revision publishes


def build_world(cfg: RegistrySimConfig, workdir: Path) -> World:
    """A fresh bare remote whose registry branch holds ``cfg.adapters`` free adapters, and a hub."""
    start = parse_time(cfg.start)
    names = adapter_names(cfg.adapters)
    files = {adapter_path(n): dump_adapter(Adapter(name=n, spec=_SPEC)).encode() for n in names}
    files[POLICY_PATH] = policy_text(cfg).encode()
    src = ensure_repo(workdir / "maintainer.git")
    src.commit_files("refs/heads/main", None, files, "catalogue\n", MAINTAINER, start - timedelta(days=1))
    remote = workdir / "remote.git"
    ensure_repo(remote)
    init_registry(
        src.repo, str(remote), source="refs/heads/main", clock=ManualClock(start - timedelta(days=1))
    )
    clock = ManualClock(start)
    hub = FileHub(workdir / "hub", clock=clock)
    hub.init()
    folder = workdir / "revision"
    atomic_write_json(folder / "adapter_config.json", {"simulated": True})
    return World(remote, hub, clock, start, tuple(names), tuple(logins(cfg.contributors)), folder)


@dataclasses.dataclass(frozen=True)
class Job:
    """One claim pull request and its job: opened at ``opened``, started by a free runner at
    ``started``, lock stamped at ``stamped`` (= started + the job's length)."""

    pr: int
    login: str
    adapter: str
    opened: datetime
    started: datetime
    stamped: datetime


def jobs(cfg: RegistrySimConfig, world: World) -> Iterator[Job]:
    """The claim jobs in stamp order, generated lazily (memory does not grow with the run).

    Claims arrive as a Poisson stream; a share aims at a small popular set of adapters, so two
    contributors often want the same adapter within one job's length. Runners take queued jobs
    first come, first served; with one job length for all, stamps come in arrival order.
    """
    rng = random.Random(cfg.seed)
    rate = cfg.claims_per_hour / 3600.0
    end = cfg.hours * 3600.0
    free = [0.0] * cfg.concurrency  # when each runner is next free (heap, seconds from start)
    t, pr = 0.0, 0
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        pr += 1
        if rng.random() < cfg.hot_fraction:
            name = world.names[rng.randrange(min(cfg.hot_adapters, len(world.names)))]
        else:
            name = world.names[rng.randrange(len(world.names))]
        login = world.logins[rng.randrange(len(world.logins))]
        begin = max(t, heapq.heappop(free))
        heapq.heappush(free, begin + cfg.job_seconds)
        started = world.start + timedelta(seconds=begin)
        # Runner clocks, like the registry's stamps, keep whole seconds (rounded up: stamps stay in order).
        stamped = world.start + timedelta(seconds=math.ceil(begin + cfg.job_seconds))
        yield Job(pr, login, name, world.start + timedelta(seconds=t), started, stamped)


def open_pull_request(git: Git, remote: str, job: Job) -> tuple[str, str]:
    """The contributor's claim PR, as ``fedem claim`` writes it: the adapter file with
    ``lock.holder`` set and the times null, on the registry head this runner saw last (a
    contributor's view is a little stale). Returns (base, head)."""
    tracking = f"refs/fedem/remote/{DEFAULT_BRANCH}"
    base = git.rev_parse(tracking) or git.fetch(remote, DEFAULT_BRANCH, tracking)
    if base is None:  # pragma: no cover - build_world made the branch
        raise ConfigError(f"{remote}: no {DEFAULT_BRANCH} branch")
    path = adapter_path(job.adapter)
    data = git.read_file(base, path)
    adapter = parse_adapter(data or b"", path)
    new = dataclasses.replace(adapter, lock=Lock(holder=job.login))
    ident = f"{job.login} <{job.login}@users.noreply.invalid>"
    head = git.commit_files(
        f"refs/pull/{job.pr}/head",
        base,
        {path: dump_adapter(new).encode()},
        f"claim: {job.adapter} by {job.login}\n",
        ident,
        job.opened,
    )
    return base, head


def publish(world: World, repo: str, login: str, at: datetime) -> None:
    """A holder pushes a revision of ``repo`` at simulated time ``at`` (its author is the login,
    which the policy maps to that login's hub account)."""
    world.clock.current = at
    # Each revision has its own content (a hub refuses to publish what its head already holds).
    atomic_write_json(world.revision / "adapter_config.json", {"simulated": True, "by": login, "at": str(at)})
    world.hub.create_repo(repo, exist_ok=True)
    head = world.hub.head(repo)
    world.hub.publish(
        repo,
        world.revision,
        message=f"hop by {login}",
        parent=head.id if head else None,
        author=login,
    )
