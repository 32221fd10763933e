"""What made an output: the provenance record (``fedem.json``), one typed schema, one module.

Every output fedem publishes carries a ``fedem.json``: an adapter revision (:class:`AdapterRecord`)
or a model checkpoint (:class:`ModelRecord`). The training jobs, the relay, and the nightly
publisher all build records here and nowhere else, and every reader goes through
:func:`AdapterRecord.from_dict`, so there is one list of required fields and one set of checks.

Compatibility: records written by fedem 0.1.0 (``tests/fixtures/fedem-0.1.0-*.json``) read
unchanged. Fields a reader does not know are kept in ``extra`` and written back as they were,
so an older fedem never drops what a newer one recorded.
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib.metadata
import os
import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from fedem.clock import Clock, format_time, now_utc
from fedem.errors import AdapterRejected, ModelError
from fedem.names import PROVENANCE, check_free_text, is_revision_id, is_sha256

ADAPTER_KIND = "seshu-lora-adapter"
MODEL_KIND = "seshu-model"

LIBRARIES = (
    "fedem",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "huggingface_hub",
    "safetensors",
    "lm_eval",
    "mamba_ssm",
    "causal_conv1d",
    "mambapy",
    "numpy",
)

# Dotted paths every adapter record must carry: who, what from, on what data, what it did.
ADAPTER_REQUIRED: tuple[str, ...] = (
    "kind",
    "adapter",
    "contributor",
    "created",
    "base.arch",
    "base.sha256",
    "data.fingerprint",
    "metrics.steps",
    "metrics.tokens",
    "metrics.bpb_before",
    "metrics.bpb_after",
    "versions.fedem",
    "versions.torch",
    "versions.peft",
    "weights_sha256",
)


# -- the environment an output was made in --------------------------------------------------------
def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The fedem checkout's commit, when running from one (and ``+dirty`` when modified)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """``versions``, ``fedem_git`` and ``host``: the top-level fields every record carries."""
    return {
        "versions": library_versions(),
        "fedem_git": git_revision(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
    }


def contributor_name(explicit: str | None = None) -> str:
    """Who is running this: explicit, else ``FEDEM_CONTRIBUTOR``, else the OS user."""
    return explicit or os.environ.get("FEDEM_CONTRIBUTOR") or getpass.getuser()


def created(clock: Clock | None = None) -> str:
    """The ``created`` stamp of a new record, from ``clock`` (default: the system clock)."""
    return format_time(now_utc(clock))


def get_path(obj: Any, dotted: str, default: Any = None) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; ``default`` when any step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


# -- records --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ParentRef:
    """The hub revision an adapter was trained from: the link a lineage follows."""

    repo: str
    revision: str
    author: str | None = None
    time: str | None = None

    @classmethod
    def of(cls, repo: str, revision: str, author: str | None, time: datetime | str | None) -> ParentRef:
        return cls(repo, revision, author or None, time.isoformat() if isinstance(time, datetime) else time)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AdapterRecord:
    """``fedem.json`` of an adapter package (kind ``seshu-lora-adapter``).

    ``base`` holds ``arch``, ``sha256`` (the base's identity, :func:`fedem.model.weights_sha256`),
    and, when known, ``path`` (a last path component only), ``repo`` and ``revision`` on a hub.
    ``revision`` is always None: the hub assigns ids, and a record never names its own.
    """

    adapter: str
    base: dict
    contributor: str
    created: str
    lora: dict
    config: dict
    data: dict
    metrics: dict
    weights_sha256: str
    parent: ParentRef | None = None
    env: dict = dataclasses.field(default_factory=environment)  # versions, fedem_git, host
    extra: dict = dataclasses.field(default_factory=dict)
    kind: str = ADAPTER_KIND

    def to_dict(self) -> dict:
        out = {
            "kind": self.kind,
            "adapter": self.adapter,
            "revision": None,
            "parent": self.parent.to_dict() if self.parent else None,
            "base": dict(self.base),
            "contributor": self.contributor,
            "created": self.created,
            "lora": dict(self.lora),
            "config": self.config,
            "data": self.data,
            "metrics": dict(self.metrics),
            "weights_sha256": self.weights_sha256,
            **self.env,
        }
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, meta: dict) -> AdapterRecord:
        """Read a record, refusing (AdapterRejected, one line) one that lacks a required field,
        is not an adapter record, or whose parent is not a revision reference."""
        missing = [f for f in ADAPTER_REQUIRED if get_path(meta, f) is None]
        if missing:
            raise AdapterRejected(f"{PROVENANCE}: missing {', '.join(missing)}")
        if meta["kind"] != ADAPTER_KIND:
            raise AdapterRejected(f"{PROVENANCE}: kind {str(meta['kind'])[:40]!r}, expected {ADAPTER_KIND!r}")
        parent = meta.get("parent")
        if parent is not None and not (isinstance(parent, dict) and isinstance(parent.get("revision"), str)):
            raise AdapterRejected(f"{PROVENANCE}: parent must be null or an object with a revision id")
        check_free_text(meta["contributor"], f"{PROVENANCE}: contributor", AdapterRejected)
        for field in ("base", "metrics", "data"):
            if not isinstance(meta[field], dict):
                raise AdapterRejected(f"{PROVENANCE}: {field} must be an object")
        for field in ("lora", "config"):
            if not isinstance(meta.get(field, {}), dict):
                raise AdapterRejected(f"{PROVENANCE}: {field} must be an object")
        if parent is not None:
            parent = ParentRef(
                repo=str(parent.get("repo")),
                revision=parent["revision"],
                author=parent.get("author") if isinstance(parent.get("author"), str) else None,
                time=parent.get("time") if isinstance(parent.get("time"), str) else None,
            )
        known = {f.name for f in dataclasses.fields(cls)} | {"revision", "versions", "fedem_git", "host"}
        return cls(
            adapter=meta["adapter"],
            base=meta["base"],
            contributor=meta["contributor"],
            created=meta["created"],
            lora=meta.get("lora", {}),
            config=meta.get("config", {}),
            data=meta["data"],
            metrics=meta["metrics"],
            weights_sha256=meta["weights_sha256"],
            parent=parent,
            env={k: meta[k] for k in ("versions", "fedem_git", "host") if k in meta},
            extra={k: v for k, v in meta.items() if k not in known},
        )


# -- checkpoints ----------------------------------------------------------------------------------
MODEL_REQUIRED: tuple[str, ...] = (
    "kind",
    "created",
    "config",
    "data",
    "metrics",
    "parameters",
    "weights_sha256",
)
RELATIONS = ("finetune", "merge")  # how a checkpoint came from its parent (HF's base_model_relation)
CURSOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SourceCursor:
    """How far continuous pretraining got into one source (see :class:`DataCursor`).

    The source's first ``documents`` documents (held-out ones included, in file order) hash to
    ``documents_sha256`` (:attr:`fedem.data.SourceStats.sha256` of that prefix), and of the
    training blocks packed from them, the first ``blocks`` were trained on.
    """

    documents: int
    documents_sha256: str
    blocks: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DataCursor:
    """The data a checkpoint chain has consumed: per source name, a prefix of its training blocks.

    Blocks are numbered in the order :func:`fedem.data.pack` makes them from the source's
    training documents (held out by text hash at ``heldout_fraction``) at ``block_size``; both
    must match for the numbers to mean the same blocks. Semantics and checks: :mod:`fedem.cpt.cursor`.
    """

    block_size: int
    heldout_fraction: float
    sources: dict[str, SourceCursor]
    version: int = CURSOR_VERSION

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "block_size": self.block_size,
            "heldout_fraction": self.heldout_fraction,
            "sources": {name: c.to_dict() for name, c in sorted(self.sources.items())},
        }

    @classmethod
    def from_dict(cls, raw: Any, where: str = f"{PROVENANCE}: cursor") -> DataCursor:
        """Read a cursor, refusing (ModelError, one line) anything not exactly of this shape."""
        if not isinstance(raw, dict) or set(raw) != {"version", "block_size", "heldout_fraction", "sources"}:
            raise ModelError(f"{where}: expected version, block_size, heldout_fraction and sources")
        if raw["version"] != CURSOR_VERSION:
            raise ModelError(
                f"{where}: version {str(raw['version'])[:20]}, this fedem reads {CURSOR_VERSION}"
            )
        bs, frac = raw["block_size"], raw["heldout_fraction"]
        if not _is_count(bs) or bs < 1:
            raise ModelError(f"{where}: block_size must be an integer >= 1")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise ModelError(f"{where}: heldout_fraction must be a number strictly between 0 and 1")
        if not isinstance(raw["sources"], dict):
            raise ModelError(f"{where}: sources must be an object")
        sources = {}
        for name, c in raw["sources"].items():
            at = f"{where}.sources.{str(name)[:60]}"
            if not isinstance(c, dict) or set(c) != {"documents", "documents_sha256", "blocks"}:
                raise ModelError(f"{at}: expected documents, documents_sha256 and blocks")
            if not (_is_count(c["documents"]) and _is_count(c["blocks"])):
                raise ModelError(f"{at}: documents and blocks must be integers >= 0")
            if not is_sha256(c["documents_sha256"]):
                raise ModelError(f"{at}: documents_sha256 must be a sha256 hex digest")
            sources[str(name)] = SourceCursor(c["documents"], c["documents_sha256"], c["blocks"])
        return cls(block_size=bs, heldout_fraction=float(frac), sources=sources)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """``fedem.json`` of a model checkpoint (kind ``seshu-model``): a pretrain, CPT or merge output.

    A published checkpoint also names the checkpoint it came from on the hub (``parent``: repo
    and revision id, never a tag, since tags can move on ``hf://``) and how (``relation``:
    ``finetune`` for CPT, ``merge`` for the nightly); a root (a pretrain) has neither. ``cursor``
    is the data continuous pretraining has consumed up to this checkpoint (None: not recorded
    here; :func:`fedem.cpt.cursor.find_cursor` looks further up the chain). The three are written
    only when set, so a record of fedem 0.1.0 round-trips byte for byte.
    """

    created: str
    config: dict
    data: dict
    metrics: dict
    parameters: int
    weights_sha256: str
    init: str | None = None  # the checkpoint it continued (a last path component or a hub ref)
    init_sha256: str | None = None
    parent: ParentRef | None = None
    relation: str | None = None
    cursor: DataCursor | None = None
    env: dict = dataclasses.field(default_factory=environment)
    extra: dict = dataclasses.field(default_factory=dict)  # e.g. a merge's adapters and method
    kind: str = MODEL_KIND

    def to_dict(self) -> dict:
        out = {
            "kind": self.kind,
            "created": self.created,
            "init": self.init,
            "init_sha256": self.init_sha256,
            "config": self.config,
            "data": self.data,
            "metrics": dict(self.metrics),
            "parameters": self.parameters,
            "weights_sha256": self.weights_sha256,
            **self.env,
        }
        if self.parent is not None:
            out["parent"] = self.parent.to_dict()
        if self.relation is not None:
            out["relation"] = self.relation
        if self.cursor is not None:
            out["cursor"] = self.cursor.to_dict()
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, meta: Any) -> ModelRecord:
        """Read a checkpoint record, refusing (ModelError, one line naming the field) one that
        lacks a required field, is not a model record, or has a field of the wrong shape."""
        if not isinstance(meta, dict):
            raise ModelError(f"{PROVENANCE}: expected a JSON object")
        missing = [f for f in MODEL_REQUIRED if get_path(meta, f) is None]
        if missing:
            raise ModelError(f"{PROVENANCE}: missing {', '.join(missing)}")
        if meta["kind"] != MODEL_KIND:
            raise ModelError(f"{PROVENANCE}: kind {str(meta['kind'])[:40]!r}, expected {MODEL_KIND!r}")
        for field in ("config", "data", "metrics"):
            if not isinstance(meta[field], dict):
                raise ModelError(f"{PROVENANCE}: {field} must be an object")
        if not _is_count(meta["parameters"]):
            raise ModelError(f"{PROVENANCE}: parameters must be an integer >= 0")
        if not is_sha256(meta["weights_sha256"]):
            raise ModelError(f"{PROVENANCE}: weights_sha256 must be a sha256 hex digest")
        if not isinstance(meta["created"], str):
            raise ModelError(f"{PROVENANCE}: created must be a time stamp")
        for field in ("init", "init_sha256"):
            if meta.get(field) is not None and not isinstance(meta[field], str):
                raise ModelError(f"{PROVENANCE}: {field} must be null or a string")
        parent = meta.get("parent")
        if parent is not None:
            if not (isinstance(parent, dict) and is_revision_id(parent.get("revision"))):
                raise ModelError(f"{PROVENANCE}: parent must be null or an object with a revision id")
            if not isinstance(parent.get("repo"), str):
                raise ModelError(f"{PROVENANCE}: parent.repo must be a repo name")
            parent = ParentRef(
                repo=parent["repo"],
                revision=parent["revision"],
                author=parent.get("author") if isinstance(parent.get("author"), str) else None,
                time=parent.get("time") if isinstance(parent.get("time"), str) else None,
            )
        relation = meta.get("relation")
        if relation is not None and relation not in RELATIONS:
            raise ModelError(
                f"{PROVENANCE}: relation {str(relation)[:20]!r}, expected one of {', '.join(RELATIONS)}"
            )
        if (parent is None) != (relation is None):
            raise ModelError(f"{PROVENANCE}: parent and relation go together (a root checkpoint has neither)")
        cursor = meta.get("cursor")
        cursor = DataCursor.from_dict(cursor) if cursor is not None else None
        known = {f.name for f in dataclasses.fields(cls)} | {"versions", "fedem_git", "host"}
        return cls(
            created=meta["created"],
            config=meta["config"],
            data=meta["data"],
            metrics=meta["metrics"],
            parameters=meta["parameters"],
            weights_sha256=meta["weights_sha256"],
            init=meta.get("init"),
            init_sha256=meta.get("init_sha256"),
            parent=parent,
            relation=relation,
            cursor=cursor,
            env={k: meta[k] for k in ("versions", "fedem_git", "host") if k in meta},
            extra={k: v for k, v in meta.items() if k not in known},
        )
