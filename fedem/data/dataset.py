"""Build a job's data: read sources, split held-out, pack, mix, fingerprint.

:class:`PackedData` is all a training run needs: per-source training blocks, held-out blocks,
mixture probabilities, and a fingerprint recorded in provenance (a hash, never the data).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import torch

from fedem.config import to_dict
from fedem.data.mixture import mixture_probs, sample_order
from fedem.data.packing import pack, split_heldout
from fedem.data.sources import load_documents
from fedem.data.spec import DataSpec
from fedem.errors import DataError


@dataclasses.dataclass(frozen=True)
class SourceStats:
    name: str
    documents: int
    heldout_documents: int
    bytes: int
    train_blocks: int
    heldout_blocks: int
    probability: float
    sha256: str


@dataclasses.dataclass
class PackedData:
    """Packed training and held-out blocks. Blocks are uint16 ids; no padding anywhere."""

    spec: DataSpec
    train: list[np.ndarray]  # per source: (n_i, l)
    heldout: torch.Tensor  # (m, l) int64
    probs: np.ndarray  # (S,)
    stats: list[SourceStats]
    fingerprint: str

    @property
    def block_size(self) -> int:
        return self.spec.block_size

    @property
    def train_tokens(self) -> int:
        return sum(b.size for b in self.train)

    def order(self, total: int, seed: int) -> np.ndarray:
        """Deterministic (source, block) draws for a whole run: (total, 2)."""
        return sample_order([len(b) for b in self.train], self.probs, total, seed)

    def gather(self, draws: np.ndarray) -> torch.Tensor:
        """Blocks for rows of :meth:`order`: (b, l) int64."""
        return torch.from_numpy(np.stack([self.train[s][i] for s, i in draws]).astype(np.int64))

    def provenance(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "block_size": self.block_size,
            "train_tokens": self.train_tokens,
            "heldout_blocks": int(self.heldout.shape[0]),
            "sources": [dataclasses.asdict(s) for s in self.stats],
        }


def _docs_sha(docs: list[str]) -> str:
    h = hashlib.sha256()
    for d in docs:
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def build_dataset(spec: DataSpec) -> PackedData:
    """Read, split, pack and mix every source of ``spec``."""
    train, held, stats_rows = [], [], []
    for src in spec.sources:
        docs = load_documents(src)
        tr_docs, ho_docs = split_heldout(docs, spec.heldout_fraction)
        tr, ho = pack(tr_docs, spec.block_size), pack(ho_docs, spec.block_size)
        train.append(tr)
        held.append(ho)
        stats_rows.append((src, docs, ho_docs, tr, ho))
    sizes = [len(t) for t in train]
    if sum(sizes) == 0:
        raise DataError(
            f"data: no source yields a full training block of {spec.block_size} bytes; lower block_size"
        )
    if sum(len(h) for h in held) == 0:
        raise DataError("data: no held-out block; raise heldout_fraction or add documents")
    probs = mixture_probs(sizes, [s.weight for s in spec.sources], spec.temperature)
    stats = [
        SourceStats(
            name=src.name,
            documents=len(docs),
            heldout_documents=len(ho_docs),
            bytes=sum(len(d.encode()) for d in docs),
            train_blocks=len(tr),
            heldout_blocks=len(ho),
            probability=float(p),
            sha256=_docs_sha(docs),
        )
        for (src, docs, ho_docs, tr, ho), p in zip(stats_rows, probs, strict=True)
    ]
    fingerprint = hashlib.sha256(
        json.dumps({"spec": to_dict(spec), "sources": [s.sha256 for s in stats]}, sort_keys=True).encode()
    ).hexdigest()
    return PackedData(
        spec=spec,
        train=train,
        heldout=_round_robin(held, spec.heldout_max_blocks),
        probs=probs,
        stats=stats,
        fingerprint=fingerprint,
    )


def _round_robin(per_source: list[np.ndarray], cap: int) -> torch.Tensor:
    """Up to ``cap`` held-out blocks taken evenly across sources: (m, l) int64."""
    picked, i = [], 0
    while len(picked) < cap and any(i < len(h) for h in per_source):
        picked += [h[i] for h in per_source if i < len(h)]
        i += 1
    return torch.from_numpy(np.stack(picked[:cap]).astype(np.int64))
