"""Text -> fixed-length training blocks, with EOS between documents and no padding anywhere.

Every position of every block is a real byte or an EOS, so the loss never sees padding
(the 2024 fedem scored 81% padding). The tail shorter than one block is dropped.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fedem.model.tokenizer import BYTE_OFFSET, EOS_ID

_HASH_SALT = b"fedem-heldout-v1\0"


def encode_documents(docs: list[str]) -> np.ndarray:
    """All docs as one id stream (uint16): bytes shifted by 3, EOS after each document. (T,)"""
    parts = []
    eos = np.array([EOS_ID], dtype=np.uint16)
    for doc in docs:
        parts.append(np.frombuffer(doc.encode("utf-8"), dtype=np.uint8).astype(np.uint16) + BYTE_OFFSET)
        parts.append(eos)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def pack(docs: list[str], block_size: int) -> np.ndarray:
    """Pack documents into blocks: (n_blocks, block_size) uint16, no padding."""
    stream = encode_documents(docs)  # (T,)
    n = len(stream) // block_size
    return stream[: n * block_size].reshape(n, block_size)


def heldout_score(doc: str) -> float:
    """A number in [0, 1) fixed by the document text; ``< fraction`` means held out."""
    digest = hashlib.blake2b(_HASH_SALT + doc.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_heldout(docs: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, heldout) by text hash: deterministic, seed-free, duplicates stay together."""
    train, held = [], []
    for doc in docs:
        (held if heldout_score(doc) < fraction else train).append(doc)
    return train, held
