"""The adapter package on disk: which files it holds, its provenance record, and restamping it.

A package is one flat folder::

    adapter_model.safetensors   the LoRA A/B tensors (nothing else)
    adapter_config.json         PEFT's LoraConfig
    fedem.json                  provenance (fedem.provenance.AdapterRecord)
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

from fedem import names, provenance, untrusted
from fedem.errors import AdapterRejected
from fedem.io import atomic_dir, atomic_write_json
from fedem.provenance import ADAPTER_REQUIRED, AdapterRecord

# The file names' home is fedem.names; these short aliases read better inside the package.
WEIGHTS = names.ADAPTER_WEIGHTS
CONFIG = names.ADAPTER_CONFIG
PROVENANCE = names.PROVENANCE
CARD = names.CARD
REQUIRED_FILES: tuple[str, ...] = (WEIGHTS, CONFIG, PROVENANCE)
# The record's schema and required fields live in fedem.provenance (one reader, one writer).
PROVENANCE_FIELDS = ADAPTER_REQUIRED
get_path = provenance.get_path


def resolve_adapter_dir(path: str | Path) -> Path:
    """An adapter folder, or a finetune run folder holding ``adapter/``."""
    path = Path(path)
    return path / "adapter" if (path / "adapter" / CONFIG).is_file() else path


def read_json(path: Path, *, max_bytes: int) -> dict:
    """A JSON object from ``path``, bounded (:mod:`fedem.untrusted`); AdapterRejected otherwise."""
    return untrusted.read_json(path, max_bytes=max_bytes, error=AdapterRejected, where=path.name)


def parse_json_object(raw: bytes, where: str) -> dict:
    """The JSON object in ``raw``, bounded (:mod:`fedem.untrusted`); AdapterRejected otherwise."""
    return untrusted.parse_json_object(raw, where, AdapterRejected)


def check_provenance_fields(meta: dict) -> None:
    """Refuse a ``fedem.json`` that lacks a required field or is not an adapter record."""
    AdapterRecord.from_dict(meta)


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
