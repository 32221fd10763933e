"""Replay: finetuning draws a share of its blocks from the base's own training mixture.

A LoRA hop on one language alone can badly harm the others (BRIEF §14: a Hindi hop took Hindi
from 2.57 to 1.25 bits/byte and the rest of the corpus from 0.94 to 2.11), and the gate's
no-regression rule then refuses it. Mixing in the base's data keeps the others.

``data.replay`` is the share of every run's draws that come from the replay mixture: the
sources the base recorded in its ``fedem.json`` (``config.data``), with the base's weights and
temperature, split with the base's held-out fraction so that only documents the base trained on
are replayed (never one held out from it). A base with no such record replays the embedded
corpus, which is what fedem's own bases train on. Pretraining ignores ``data.replay``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from fedem import untrusted
from fedem.config import from_dict, to_dict
from fedem.data.dataset import PackedData, SourceStats, _docs_sha
from fedem.data.mixture import mixture_probs
from fedem.data.packing import pack, split_heldout
from fedem.data.sources import load_documents
from fedem.data.spec import DataSpec
from fedem.errors import ConfigError, DataError, FedemError
from fedem.names import PROVENANCE
from fedem.provenance import get_path

PREFIX = "replay:"


def base_mixture(model_dir: str | Path, found_in: str | Path | None = None) -> DataSpec:
    """The data spec the base in ``model_dir`` was trained on, or the embedded default.

    ``found_in``: the folder holding the base's local source files, which a published record
    names by file name only (``data.replay_from``); absolute recorded paths are kept as they are.
    """
    prov = Path(model_dir) / PROVENANCE
    if not prov.is_file():
        return DataSpec()
    # A base's record may come from a hub: read it bounded, like every untrusted file.
    data = get_path(untrusted.read_json(prov, error=ConfigError, where=str(prov)), "config.data")
    if data is None:
        return DataSpec()
    try:
        spec = from_dict(DataSpec, data, "config.data")
    except ConfigError as err:
        raise ConfigError(f"{prov}: {err}; set data.replay=0 to finetune without replay") from None
    if found_in is None:
        return spec
    moved = tuple(
        dataclasses.replace(s, path=str(Path(found_in) / s.path))
        if s.path and not Path(s.path).is_absolute()
        else s
        for s in spec.sources
    )
    return dataclasses.replace(spec, sources=moved)


def with_replay(packed: PackedData, mixture: DataSpec) -> PackedData:
    """``packed`` plus the replay sources, drawn with total probability ``packed.spec.replay``."""
    share = packed.spec.replay
    if share <= 0:
        return packed
    fraction = max(mixture.heldout_fraction, packed.spec.heldout_fraction)
    blocks, stats_rows = [], []
    for src in mixture.sources:
        try:
            docs = load_documents(src)
        except FedemError as err:
            raise DataError(f"data.replay: the base's source {src.name}: {err}; set data.replay=0") from None
        train_docs, _ = split_heldout(docs, fraction)
        blocks.append(pack(train_docs, packed.block_size))
        stats_rows.append((src, docs, train_docs))
    sizes = [len(b) for b in blocks]
    if sum(sizes) == 0:
        raise DataError(f"data.replay: the base's mixture yields no block of {packed.block_size} bytes")
    probs = mixture_probs(sizes, [s.weight for s in mixture.sources], mixture.temperature)  # (R,)
    stats = [
        SourceStats(
            name=PREFIX + src.name,
            documents=len(train_docs),
            heldout_documents=0,
            bytes=sum(len(d.encode()) for d in train_docs),
            train_blocks=len(b),
            heldout_blocks=0,
            probability=float(p * share),
            sha256=_docs_sha(docs),
        )
        for (src, docs, train_docs), b, p in zip(stats_rows, blocks, probs, strict=True)
    ]
    own = [dataclasses.replace(s, probability=s.probability * (1 - share)) for s in packed.stats]
    fingerprint = hashlib.sha256(
        json.dumps(
            {"data": packed.fingerprint, "replay": to_dict(mixture), "sources": [s.sha256 for s in stats]},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return dataclasses.replace(
        packed,
        train=[*packed.train, *blocks],
        probs=np.concatenate([packed.probs * (1 - share), probs * share]),  # (S + R,)
        stats=[*own, *stats],
        fingerprint=fingerprint,
    )
