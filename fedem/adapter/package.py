"""The adapter package on disk: which files it holds, its provenance record, and restamping it.

A package is one flat folder::

    adapter_model.safetensors   the LoRA A/B tensors (nothing else)
    adapter_config.json         PEFT's LoraConfig
    fedem.json                  provenance (see PROVENANCE_FIELDS), written by fedem.train.jobs
    README.md, config.yaml      model card and the training config (optional)

The hub assigns a revision id when the package is published, so ``fedem.json`` never holds its
own id: it records its ``parent`` (repo, revision, author, time) and ``lineage`` reads ids from
the hub. Everything here reads text files only after their size was checked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fedem.errors import AdapterRejected
from fedem.io import atomic_dir, atomic_write_json

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
PROVENANCE = "fedem.json"
CARD = "README.md"
REQUIRED_FILES: tuple[str, ...] = (WEIGHTS, CONFIG, PROVENANCE)
KIND = "seshu-lora-adapter"

# Dotted paths every fedem.json must carry (issue 3): who, what from, on what data, what it did.
PROVENANCE_FIELDS: tuple[str, ...] = (
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


def get_path(obj: dict, dotted: str, default: Any = None) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; ``default`` when any step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def read_json(path: Path, *, max_bytes: int) -> dict:
    """A JSON object from ``path``, refusing oversized or malformed files (AdapterRejected)."""
    if not path.is_file():
        raise AdapterRejected(f"{path.parent.name or path.parent}: missing {path.name}")
    size = path.stat().st_size
    if size > max_bytes:
        raise AdapterRejected(f"{path.name}: {size:,} bytes exceeds the cap of {max_bytes:,} for a text file")
    return parse_json_object(path.read_bytes(), path.name)


def parse_json_object(raw: bytes, where: str) -> dict:
    """The JSON object in ``raw``; AdapterRejected (one line) for anything else.

    Hostile input is expected: bytes that are not UTF-8, malformed JSON, nesting deep enough to
    exhaust the parser's recursion (RecursionError, which is not a ValueError), or a non-object.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise AdapterRejected(f"{where}: invalid JSON ({err})") from None
    except RecursionError:
        raise AdapterRejected(f"{where}: invalid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise AdapterRejected(f"{where}: expected a JSON object")
    return data


def check_provenance_fields(meta: dict) -> None:
    """Refuse a ``fedem.json`` that lacks a required field or is not an adapter record."""
    missing = [f for f in PROVENANCE_FIELDS if get_path(meta, f) is None]
    if missing:
        raise AdapterRejected(f"{PROVENANCE}: missing {', '.join(missing)}")
    if meta["kind"] != KIND:
        raise AdapterRejected(f"{PROVENANCE}: kind {meta['kind']!r}, expected {KIND!r}")
    parent = meta.get("parent")
    if parent is not None and not (isinstance(parent, dict) and isinstance(parent.get("revision"), str)):
        raise AdapterRejected(f"{PROVENANCE}: parent must be null or an object with a revision id")


def parent_revision(meta: dict) -> str | None:
    """The hub revision this adapter was trained from (None: a fresh adapter)."""
    return get_path(meta, "parent.revision")


def restamp(folder: str | Path, updates: dict[str, Any], *, card_base: str | None = None) -> dict:
    """Rewrite ``fedem.json`` with ``updates`` (dotted keys) merged in, atomically for the folder.

    The folder is rebuilt in a sibling and swapped in, so a reader sees the old package or the
    new one. ``card_base`` replaces the model card's ``base_model:`` line (a hub id), and None
    removes it: a local path there means nothing elsewhere and names the contributor's disk.
    Returns the new provenance record.
    """
    folder = Path(folder)
    meta = json.loads((folder / PROVENANCE).read_text())
    for dotted, value in updates.items():
        *parents, last = dotted.split(".")
        node = meta
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    with atomic_dir(folder, overwrite=True) as tmp:
        for p in folder.iterdir():
            if p.is_file() and p.name not in (PROVENANCE, CARD):
                shutil.copy2(p, tmp / p.name)
        atomic_write_json(tmp / PROVENANCE, meta)
        if (folder / CARD).is_file():
            (tmp / CARD).write_text(_card_with_base((folder / CARD).read_text(), card_base))
    return meta


def _card_with_base(card: str, base: str | None) -> str:
    lines = card.split("\n")
    # Only the YAML front matter (between the first two '---' lines) is touched.
    if not lines or lines[0] != "---" or "---" not in lines[1:]:
        return card
    end = lines.index("---", 1)
    head = [ln for ln in lines[1:end] if not ln.startswith("base_model:")]
    if base:
        head.append(f"base_model: {json.dumps(base)}")
    return "\n".join(["---", *head, *lines[end:]])
