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
from fedem.errors import AdapterRejected
from fedem.names import PROVENANCE, check_free_text

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


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """``fedem.json`` of a model checkpoint (kind ``seshu-model``): a pretrain, CPT or merge output."""

    created: str
    config: dict
    data: dict
    metrics: dict
    parameters: int
    weights_sha256: str
    init: str | None = None  # the checkpoint it continued (a last path component or a hub ref)
    init_sha256: str | None = None
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
        return {**self.extra, **out}
