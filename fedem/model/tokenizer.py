"""Seshu's byte-level tokenizer: 3 specials + 256 bytes, so any script needs no new vocabulary.

``ByT5Tokenizer(extra_ids=0)`` needs no files. Ids: pad 0, eos 1, unk 2, byte ``x`` -> ``x + 3``.
Trap (BRIEF §2): the default ``ByT5Tokenizer()`` adds 125 sentinel ids (384 total), more rows
than the 259-row embedding has. The vocabulary must match the embedding exactly.
"""

from __future__ import annotations

from transformers import ByT5Tokenizer

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
BYTE_OFFSET = 3
VOCAB_SIZE = 259


def byte_tokenizer() -> ByT5Tokenizer:
    """A fresh byte tokenizer with exactly :data:`VOCAB_SIZE` ids."""
    tok = ByT5Tokenizer(extra_ids=0)
    assert len(tok) == VOCAB_SIZE, f"byte tokenizer has {len(tok)} ids, expected {VOCAB_SIZE}"
    return tok


def encode(text: str) -> list[int]:
    """Bytes -> ids without the tokenizer object (the hot path for packing). No EOS added."""
    return [b + BYTE_OFFSET for b in text.encode("utf-8")]


def decode(ids) -> str:
    """Ids -> text; specials are dropped, invalid UTF-8 is replaced."""
    return bytes(i - BYTE_OFFSET for i in ids if i >= BYTE_OFFSET).decode("utf-8", errors="replace")
