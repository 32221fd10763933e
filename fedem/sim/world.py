"""The simulated federation's outside world: data shards, a bare git remote, a file hub, a clock.

Everything here plays someone who is not fedem: the maintainers (the catalogue, the policy, the
first checkpoint, new pretraining data), the contributors (their shards, their hour of the
day) and GitHub (the remote). The code under test runs against it unchanged.

Data. Each language's embedded documents are split by text hash into held-out and training
(:func:`fedem.data.packing.split_heldout`, the same rule every fedem job applies). The training
documents are shuffled once with the seed, then cut into the base's share, a reserve for
continuous pretraining, and disjoint contributor shards. Every file also carries the held-out
documents: jobs hold them out again by the same hash, so nothing held out is ever trained on
and every job has the held-out set it needs.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from pathlib import Path

from fedem.clock import ManualClock, parse_time
from fedem.data.packing import split_heldout
from fedem.data.sources import load_documents
from fedem.data.spec import SourceSpec
from fedem.evaluate.heldout import heldout_of, write_heldout
from fedem.hub.filehub import FileHub
from fedem.io import atomic_write_text
from fedem.registry.git import ensure_repo
from fedem.registry.model import POLICY_PATH, Adapter, Spec, adapter_path, dump_adapter
from fedem.registry.ops import init_registry
from fedem.sim.config import SimConfig, session_minute

MAINTAINER = "fedem-sim-maintainer <maintainer@fedem.invalid>"
PUBLISHER = "maintainer"  # the hub account that publishes checkpoints
CPT_SHARE = 0.15  # of each language's training documents, kept back for continuous pretraining


@dataclasses.dataclass(frozen=True)
class Contributor:
    """One virtual contributor: a GitHub login, its hub account, its languages and shard files,
    and the minute of the day its first session starts."""

    login: str
    hub_user: str
    languages: tuple[str, ...]
    shard: tuple[Path, ...]  # one text file per language
    minute: int

    def sources(self) -> tuple[SourceSpec, ...]:
        return tuple(
            SourceSpec(path=str(p), name=lang) for p, lang in zip(self.shard, self.languages, strict=True)
        )


@dataclasses.dataclass
class World:
    folder: Path
    clock: ManualClock
    hub: FileHub
    remote: Path  # the bare remote holding the registry branch (GitHub's repository)
    heldout: Path  # the private held-out JSONL the gate reads (and the report scores)
    corpus: dict[str, Path]  # the base's pretraining file per language (CPT appends to it)
    reserve: dict[str, list[str]]  # per language: documents the maintainers add for CPT, in order
    contributors: tuple[Contributor, ...]
    adapters: dict[str, tuple[str, ...]]  # adapter name -> its languages
    tokens_per_step: int

    @property
    def corpus_dir(self) -> Path:
        """The folder of the maintainers' pretraining files (contributors keep a copy to replay)."""
        return next(iter(self.corpus.values())).parent

    def repo(self, name: str) -> Path:
        """A local git repository of one role (contributors' clone, claim server, reconciler)."""
        return ensure_repo(self.folder / "git" / f"{name}.git").repo


def join_documents(text_docs: list[str]) -> str:
    """Documents as a text file: one blank line between them (how fedem reads .txt sources)."""
    return "\n\n".join(d.replace("\n\n", "\n") for d in text_docs) + "\n"


@dataclasses.dataclass(frozen=True)
class Split:
    """Each language's documents: held out, the base's share, the CPT reserve, the contributors' pool."""

    heldout: dict[str, list[str]]
    base: dict[str, list[str]]
    reserve: dict[str, list[str]]
    pool: dict[str, list[str]]


def split_data(cfg: SimConfig) -> Split:
    """The same split for every policy of a run: a pure function of the config's seed and shares."""
    rng = random.Random(cfg.seed)
    out = Split({}, {}, {}, {})
    for lang in cfg.languages:
        train, heldout = split_heldout(load_documents(SourceSpec(embedded=lang)), cfg.heldout_fraction)
        rng.shuffle(train)
        n_base = int(len(train) * cfg.base.share)
        cpt_runs = cfg.cpt.every_days and cfg.cpt.every_days <= cfg.days
        n_cpt = int(len(train) * CPT_SHARE) if cpt_runs else 0
        out.heldout[lang], out.base[lang] = heldout, train[:n_base]
        out.reserve[lang], out.pool[lang] = train[n_base : n_base + n_cpt], train[n_base + n_cpt :]
    return out


def write_base_corpus(split: Split, folder: Path) -> dict[str, Path]:
    """The first checkpoint's pretraining files, one per language (never modified afterwards)."""
    return {
        lang: atomic_write_text(folder / f"{lang}.txt", join_documents(split.heldout[lang] + docs))
        for lang, docs in split.base.items()
    }


def build_world(cfg: SimConfig, folder: Path, split: Split) -> World:
    """Shards, the private held-out file, an empty hub and a remote with the registry branch."""
    start = parse_time(cfg.start)
    clock = ManualClock(start - timedelta(hours=1))
    data = folder / "data"
    # The maintainers' pretraining files start as the base's and grow (CPT continues at its cursor).
    corpus = write_base_corpus(split, data / "corpus")
    reserve = {lang: list(docs) for lang, docs in split.reserve.items()}
    heldout_file = write_heldout(
        data / "private" / "heldout.jsonl", heldout_of(split.heldout, "simulated held-out")
    )

    people = []
    n = cfg.contributors.count
    for i in range(n):
        login = f"c{i + 1:02d}"
        if cfg.contributors.split == "one_language":
            langs = (cfg.languages[i % len(cfg.languages)],)
            peers = [j for j in range(n) if cfg.languages[j % len(cfg.languages)] == langs[0]]
            part, parts = peers.index(i), len(peers)
        else:
            langs, part, parts = tuple(cfg.languages), i, n
        shard = []
        for lang in langs:
            pool = split.pool[lang]
            lo, hi = len(pool) * part // parts, len(pool) * (part + 1) // parts
            path = data / "shards" / f"{login}-{lang}.txt"
            shard.append(atomic_write_text(path, join_documents(split.heldout[lang] + pool[lo:hi])))
        minute = session_minute(i, len(cfg.languages), 0, cfg.contributors.hop_minutes)
        people.append(Contributor(login, f"{login}-hf", langs, tuple(shard), minute))

    adapters = _adapters(cfg, people)
    hub = FileHub(folder / "hub", clock=clock)
    hub.init()
    remote = folder / "git" / "remote.git"
    ensure_repo(remote)
    _init_registry(cfg, folder, remote, adapters, people, clock)
    tokens = cfg.hop.batch_size * cfg.hop.block_size
    return World(folder, clock, hub, remote, heldout_file, corpus, reserve, tuple(people), adapters, tokens)


def _adapters(cfg: SimConfig, people: list[Contributor]) -> dict[str, tuple[str, ...]]:
    """relay: one adapter per language (iid: one per language slot, all languages);
    independent: one adapter per contributor."""
    if cfg.mode == "independent":
        return {f"seshu-{p.login}": p.languages for p in people}
    if cfg.contributors.split == "one_language":
        return {f"seshu-{lang}": (lang,) for lang in cfg.languages}
    return {f"seshu-mix{k + 1}": tuple(cfg.languages) for k in range(len(cfg.languages))}


def adapters_for(world: World, who: Contributor, mode: str) -> list[str]:
    """The adapters a contributor may claim, in the order it tries them."""
    if mode == "independent":
        return [f"seshu-{who.login}"]
    return [
        a
        for a, langs in world.adapters.items()
        if set(langs) <= set(who.languages) or set(who.languages) <= set(langs)
    ]


def _init_registry(cfg, folder, remote, adapters, people, clock) -> None:
    files = {
        adapter_path(name): dump_adapter(
            Adapter(
                name=name,
                spec=Spec(base_model="seshu", targets=("in_proj",), rank=cfg.hop.rank, languages=langs),
            )
        ).encode()
        for name, langs in adapters.items()
    }
    ids = "".join(f"  {p.login}: [{p.hub_user}]\n" for p in people)
    files[POLICY_PATH] = (
        f"ttl_minutes: {cfg.ttl_minutes}\nmax_holds: 1\ncooldown_minutes: 60\nmaintainers: [{PUBLISHER}]\n"
        f"identities:\n{ids}"
    ).encode()
    src = ensure_repo(folder / "git" / "maintainer.git")
    src.commit_files("refs/heads/main", None, files, "catalogue\n", MAINTAINER, clock.now())
    init_registry(src.repo, str(remote), source="refs/heads/main", clock=clock)


def add_cpt_data(world: World, fraction: float) -> int:
    """The maintainers append the next ``fraction`` of the reserve to each pretraining file;
    returns the number of documents added (a source may only grow: CPT continues at its cursor)."""
    added = 0
    for lang, docs in world.reserve.items():
        take = max(1, int(len(docs) * fraction)) if docs else 0
        new, world.reserve[lang] = docs[:take], docs[take:]
        if new:
            path = world.corpus[lang]
            atomic_write_text(path, path.read_text(encoding="utf-8") + "\n" + join_documents(new))
            added += len(new)
    return added
