"""``fedem simulate``'s config: the whole federation on one machine, as one frozen dataclass.

``pipelines/simulate.yaml`` is its form on disk. A run simulates ``days`` days of a federation
that starts from a small base pretrained on a share of the data: N contributors take turns
(claim, relay a hop on their own shard, push; some drop out and their lock expires), the
nightly gates and merges, continuous pretraining runs on its schedule, and adapters follow
the new base. ``compare`` lists other policies run on the same data, seed and compute; the
centralized reference (the union of the data, the same tokens) is run beside them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from fedem.clock import parse_time
from fedem.config import Invalid
from fedem.data.spec import EMBEDDED_LANGS
from fedem.gate.policy import GatePolicy
from fedem.merge.spec import METHODS, MergeSpec

Mode = Literal["relay", "independent", "centralized"]
Split = Literal["one_language", "iid"]


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    """The first checkpoint: a ``preset`` Seshu pretrained for ``steps`` on ``share`` of each
    language's training documents (the rest is for contributors and CPT)."""

    preset: str = "tiny"
    steps: int = 120
    batch_size: int = 8
    lr: float = 1e-2
    share: float = 0.5

    def __post_init__(self):
        if self.steps < 1:
            raise Invalid("steps", "at least 1")
        if not 0.05 <= self.share <= 0.9:
            raise Invalid("share", "a fraction between 0.05 and 0.9")


@dataclasses.dataclass(frozen=True)
class ContributorSpec:
    """Who trains: ``count`` contributors, each with its own shard of the data.

    ``split``: ``one_language`` gives contributor i the language i mod L (its shard: a disjoint
    slice of that language's documents); ``iid`` gives each a slice of every language.
    ``dropout``: the chance a hop is abandoned after training (never pushed): its lock expires
    after the registry's TTL. ``hops_per_day``: each contributor's sessions a day, at its own
    hour; ``steps``: training steps per hop (the contributor's compute budget per session).
    """

    count: int = 6
    split: Split = "one_language"
    dropout: float = 0.2
    hops_per_day: int = 1
    steps: int = 30
    hop_minutes: int = 60  # simulated length of one hop (pull, train, push)
    # Sessions that drop out whatever the draw, as LOGIN@DAY (day from 1), e.g. c02@1.
    drop_sessions: tuple[str, ...] = ()

    def __post_init__(self):
        if not 1 <= self.count <= 64:
            raise Invalid("count", "between 1 and 64 (contributors take turns on this machine)")
        if not 0.0 <= self.dropout < 1.0:
            raise Invalid("dropout", "a probability in [0, 1)")
        if not 1 <= self.hops_per_day <= 6:
            raise Invalid("hops_per_day", "between 1 and 6")
        if self.steps < 1:
            raise Invalid("steps", "at least 1")
        if not 1 <= self.hop_minutes <= 600:
            raise Invalid("hop_minutes", "between 1 and 600")
        for item in self.drop_sessions:
            login, sep, day = item.partition("@")
            if not sep or not login or not day.isdigit() or int(day) < 1:
                raise Invalid("drop_sessions", f"entries LOGIN@DAY such as c02@1 (got {item!r})")


@dataclasses.dataclass(frozen=True)
class HopSpec:
    """How each hop trains (the same for every contributor and for the centralized reference)."""

    batch_size: int = 8
    lr: float = 5e-3
    warmup_steps: int = 2
    block_size: int = 64
    replay: float = 0.8
    rank: int = 8

    def __post_init__(self):
        if not 0.0 <= self.replay < 1.0:
            raise Invalid("replay", "a fraction in [0, 1)")
        if self.block_size < 16:
            raise Invalid("block_size", "at least 16")


@dataclasses.dataclass(frozen=True)
class CptSpec:
    """Continuous pretraining: every ``every_days`` days (0: never), after that night's merge,
    train the checkpoint ``steps`` steps on the new data the maintainers added."""

    every_days: int = 0
    steps: int = 30
    lr: float = 3e-3

    def __post_init__(self):
        if self.every_days < 0:
            raise Invalid("every_days", "0 (off) or a number of days")
        if self.steps < 1:
            raise Invalid("steps", "at least 1")


@dataclasses.dataclass(frozen=True)
class PolicyOverride:
    """One policy of a comparison: a ``name`` and ``set``, overrides of this config's fields
    (``mode``, ``merge.method``, ``gate.delta``, ``contributors.split`` ...)."""

    name: str
    set: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise Invalid("name", "a short name of letters, digits, '-' and '_'")


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """``fedem simulate --config``: see the module docstring."""

    name: str = "relay"
    mode: Mode = "relay"
    seed: int = 0
    start: str = "2026-12-01T00:00:00Z"
    days: int = 3
    languages: tuple[str, ...] = ("en", "hi", "te")
    base: BaseSpec = dataclasses.field(default_factory=BaseSpec)
    contributors: ContributorSpec = dataclasses.field(default_factory=ContributorSpec)
    hop: HopSpec = dataclasses.field(default_factory=HopSpec)
    # The gate scores the simulated languages whatever gate.languages says (the world sets them).
    gate: GatePolicy = dataclasses.field(
        default_factory=lambda: GatePolicy(
            languages=("en", "hi", "te"), docs_per_language=24, resamples=1000, max_length=512, delta=0.02
        )
    )
    merge: MergeSpec = dataclasses.field(default_factory=lambda: MergeSpec(method="ties"))
    cpt: CptSpec = dataclasses.field(default_factory=lambda: CptSpec(every_days=1))
    ttl_minutes: int = 180
    reconcile_minutes: int = 5
    heldout_fraction: float = 0.2
    eval_max_docs: int = 32  # held-out documents per language in the report's figures
    compare: tuple[PolicyOverride, ...] = ()
    centralized: bool = True  # run the centralized reference beside the policies

    def __post_init__(self):
        try:
            parse_time(self.start)
        except ValueError:
            raise Invalid("start", "an ISO-8601 UTC time such as 2026-12-01T00:00:00Z") from None
        if not 1 <= self.days <= 60:
            raise Invalid("days", "between 1 and 60")
        unknown = [lang for lang in self.languages if lang not in EMBEDDED_LANGS]
        if not self.languages or unknown:
            raise Invalid("languages", f"codes of the embedded corpus ({', '.join(EMBEDDED_LANGS)})")
        if self.merge.method not in METHODS:
            raise Invalid("merge.method", f"one of {', '.join(sorted(METHODS))}")
        if self.merge.weights is not None:
            raise Invalid("merge.weights", "null: the nightly merges however many adapters were accepted")
        if not 30 <= self.ttl_minutes <= 24 * 60:
            raise Invalid("ttl_minutes", "between 30 and 1440")
        if not 1 <= self.reconcile_minutes <= 60:
            raise Invalid("reconcile_minutes", "between 1 and 60")
        if not 0.05 <= self.heldout_fraction <= 0.5:
            raise Invalid("heldout_fraction", "between 0.05 and 0.5")
        if self.eval_max_docs < 4:
            raise Invalid("eval_max_docs", "at least 4")
        names = [self.name, *(p.name for p in self.compare)]
        if len(set(names)) != len(names) or "centralized" in names:
            raise Invalid("compare", "policy names that are unique and not 'centralized'")
        if self.mode == "centralized":
            raise Invalid("mode", "relay or independent (the centralized reference runs on its own)")
        c = self.contributors
        if c.hop_minutes >= self.ttl_minutes:
            raise Invalid(
                "contributors.hop_minutes",
                f"less than ttl_minutes ({self.ttl_minutes}): a push after its lock ends is no hop",
            )
        end = last_session_end(c.count, len(self.languages), c.hops_per_day, c.hop_minutes)
        if end > NIGHTLY_MINUTE:
            raise Invalid(
                "contributors",
                f"sessions that end before the 23:00 nightly (the last would end at {_clock_time(end)}; "
                "fewer contributors or hops_per_day, or a shorter hop_minutes)",
            )


FIRST_SESSION = 8 * 60  # minute of the day the first wave of contributors starts
SESSION_GAP = 4 * 60  # between one contributor's sessions of a day
NIGHTLY_MINUTE = 23 * 60  # the nightly's minute of the day (every hop of the day must be pushed by then)


def session_minute(i: int, languages: int, k: int, hop_minutes: int) -> int:
    """Minute of the day contributor ``i``'s session ``k`` starts: contributors come in waves of
    one per language, each wave one hop after the last, so relays follow on."""
    wave, slot = divmod(i, languages)
    return FIRST_SESSION + wave * hop_minutes + slot + k * SESSION_GAP


def _clock_time(minute: int) -> str:
    day = " the next day" if minute >= 24 * 60 else ""
    return f"{minute // 60 % 24:02d}:{minute % 60:02d}{day}"


def last_session_end(count: int, languages: int, hops_per_day: int, hop_minutes: int) -> int:
    return (
        max(session_minute(i, languages, hops_per_day - 1, hop_minutes) for i in range(count)) + hop_minutes
    )
