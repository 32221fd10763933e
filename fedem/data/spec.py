"""What data a job trains on: sources, their mixture, packing and the held-out split."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path

from fedem.config import Invalid

EMBEDDED_LANGS = ("en", "hi", "bn", "te", "ta", "mr", "kn", "gu", "ml", "pa", "or", "as")


def embedded_dir():
    """Folder of the embedded corpus shipped inside the package."""
    return resources.files("fedem.data") / "corpus"


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One data source. Exactly one of ``embedded``, ``path`` or ``dataset`` is set.

    - ``embedded``: a language code of the corpus shipped with fedem (no network);
    - ``path``: a local ``.txt`` (documents separated by blank lines), ``.jsonl``/``.json`` or
      ``.parquet`` file, or a folder of them;
    - ``dataset``: a hub dataset id (e.g. ``ai4bharat/samanantar``), read with ``datasets``.
    """

    name: str = ""
    embedded: str | None = None
    path: str | None = None
    dataset: str | None = None
    subset: str | None = None  # the hub dataset's config name, e.g. "hi" for samanantar
    split: str = "train"
    text_field: str = "text"
    weight: float = 1.0
    max_documents: int | None = None

    def __post_init__(self):
        given = [k for k in ("embedded", "path", "dataset") if getattr(self, k)]
        if len(given) != 1:
            raise Invalid(
                "embedded|path|dataset", f"exactly one of embedded, path or dataset (got {given or 'none'})"
            )
        if self.embedded and self.embedded not in EMBEDDED_LANGS:
            raise Invalid("embedded", f"one of {', '.join(EMBEDDED_LANGS)}")
        if not self.weight > 0:
            raise Invalid("weight", "a number > 0")
        if self.max_documents is not None and self.max_documents < 1:
            raise Invalid("max_documents", "an integer >= 1 or null")
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        if not re.fullmatch(r"[\w.@:/-]+", self.name):
            raise Invalid("name", "letters, digits and . _ - @ : / only")

    def default_name(self) -> str:
        if self.embedded:
            return f"embedded:{self.embedded}"
        if self.dataset:
            return f"{self.dataset}:{self.subset}" if self.subset else self.dataset
        # The file or folder name only: names travel in provenance, local layouts must not.
        return Path(self.path).name or str(self.path)


def default_sources() -> tuple[SourceSpec, ...]:
    return tuple(SourceSpec(embedded=lang) for lang in EMBEDDED_LANGS)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Sources, how they are mixed, and how text becomes training blocks.

    Mixing: each source ``i`` with ``B_i`` packed blocks and weight ``w_i`` is sampled with
    probability ``p_i ∝ (w_i·B_i)^(1/temperature)``: temperature 1 is proportional to size,
    larger values flatten towards uniform, which lifts low-resource languages.

    Held-out split: a document is held out when the hash of its text falls under
    ``heldout_fraction``. It depends on the text alone (not on a seed), so every job that uses
    the same fraction agrees on it, and duplicate documents always land on the same side.

    Replay (finetuning only; pretraining ignores it): ``replay`` is the share of training draws
    taken from the base's own mixture, so a hop on one language keeps the others (see
    :mod:`fedem.data.replay`). 0 turns it off. A published checkpoint records a local source
    file by its name only (never the publisher's path): ``replay_from`` names the folder where
    this machine keeps those files (null: relative to the working directory).
    """

    sources: tuple[SourceSpec, ...] = dataclasses.field(default_factory=default_sources)
    block_size: int = 256
    temperature: float = 1.0
    heldout_fraction: float = 0.05
    heldout_max_blocks: int = 64
    replay: float = 0.5
    replay_from: str | None = None

    def __post_init__(self):
        if not self.sources:
            raise Invalid("sources", "at least one source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise Invalid("sources", f"unique source names (duplicates in {names})")
        if not 8 <= self.block_size <= 1 << 20:
            raise Invalid("block_size", "an integer between 8 and 1048576")
        if not self.temperature > 0:
            raise Invalid("temperature", "a number > 0")
        if not 0 < self.heldout_fraction < 1:
            raise Invalid("heldout_fraction", "a number strictly between 0 and 1")
        if self.heldout_max_blocks < 1:
            raise Invalid("heldout_max_blocks", "an integer >= 1")
        if not 0 <= self.replay < 1:
            raise Invalid("replay", "a number in [0, 1) (the share of draws from the base's mixture)")


def public_data(data: dict) -> dict:
    """A DataSpec's plain form (``config.to_dict``) as published with an adapter or a checkpoint:
    local source paths cut to their file name, and no ``replay_from``. Both are facts of one
    machine (a home folder, a layout) that a published record must not reveal."""
    for src in data.get("sources", ()):
        if src.get("path"):
            src["path"] = Path(src["path"]).name
    data.pop("replay_from", None)
    return data
