"""Held-out documents by language: the embedded corpus' split, or a JSONL file (public or private).

A held-out file is JSON Lines, one ``{"text": ..., "lang": ...}`` object per line (other keys
are ignored). The gate's file is private: it is named by an environment variable, and no
message, log or report ever shows its path or a byte of its text, only counts and a sha256
fingerprint. Messages therefore say *where* (a label and a line number), never *what*.

Sampling is a pure function of (documents, seed): the gate draws its nightly sample with a seed
fixed at gate time, so nobody can know which documents will be scored when they push.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fedem.data.packing import split_heldout
from fedem.data.sources import load_documents
from fedem.data.spec import EMBEDDED_LANGS, SourceSpec
from fedem.errors import DataError

DEFAULT_FRACTION = 0.05  # fedem's default data.heldout_fraction


@dataclasses.dataclass(frozen=True)
class Heldout:
    """Documents per language, in file order. ``label`` is safe to print; ``sha256`` fingerprints
    the documents (language and text of each, in order) without revealing them."""

    docs: Mapping[str, tuple[str, ...]]
    label: str
    sha256: str

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.docs)

    def require(self, languages: Sequence[str], *, min_docs: int = 1) -> None:
        """Refuse a language with fewer than ``min_docs`` documents (one line, no text)."""
        for lang in languages:
            n = len(self.docs.get(lang, ()))
            if n < min_docs:
                raise DataError(
                    f"{self.label}: language {lang!r} has {n} document{'s' * (n != 1)}, "
                    f"needs at least {min_docs}"
                )


def check_languages(languages: Sequence[str], field: str = "languages") -> tuple[str, ...]:
    """Refuse language codes fedem does not know (the embedded corpus' 12)."""
    for lang in languages:
        if lang not in EMBEDDED_LANGS:
            raise DataError(
                f"{field}: unknown language {lang!r} (expected one of {', '.join(EMBEDDED_LANGS)})"
            )
    return tuple(languages)


def _fingerprint(docs: Mapping[str, Sequence[str]]) -> str:
    h = hashlib.sha256()
    for lang, texts in docs.items():
        for t in texts:
            b = t.encode("utf-8")
            h.update(lang.encode() + b"\0" + len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def heldout_of(docs: dict[str, list[str]], label: str) -> Heldout:
    """A :class:`Heldout` of the given documents per language, fingerprinted."""
    frozen = {lang: tuple(v) for lang, v in docs.items()}
    return Heldout(frozen, label, _fingerprint(frozen))


def embedded_heldout(
    fraction: float = DEFAULT_FRACTION, languages: Sequence[str] = EMBEDDED_LANGS
) -> Heldout:
    """The embedded corpus' held-out split: documents whose text hash falls under ``fraction``."""
    docs = {lang: split_heldout(load_documents(SourceSpec(embedded=lang)), fraction)[1] for lang in languages}
    return heldout_of(docs, f"embedded corpus, held-out split {fraction:g}")


def read_heldout(path: str | os.PathLike, *, label: str | None = None) -> Heldout:
    """Documents of a JSONL file of ``{"text", "lang"}`` rows; ``label`` names it in messages."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise DataError(f"{label}: held-out file not found")
    docs: dict[str, list[str]] = {}
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{label}: cannot read the held-out file ({err.__class__.__name__})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
        if not (
            isinstance(row, dict)
            and isinstance(row.get("text"), str)
            and row["text"].strip()
            and isinstance(row.get("lang"), str)
        ):
            # Never echo the line: it may be secret text.
            raise DataError(f"{label}: line {i}: expected a JSON object with a non-empty text and a lang")
        docs.setdefault(row["lang"], []).append(row["text"])
    if not docs:
        raise DataError(f"{label}: the held-out file holds no documents")
    return heldout_of(docs, label)


def heldout_from_env(var: str) -> Heldout:
    """The private held-out set: the file named by environment variable ``var`` (labelled ``$var``)."""
    value = os.environ.get(var, "")
    if not value:
        raise DataError(f"${var}: not set; it must name the private held-out JSONL file")
    return read_heldout(value, label=f"held-out set ${var}")


def write_heldout(path: str | os.PathLike, heldout: Heldout) -> Path:
    """Write ``heldout`` as JSONL (used to ship the embedded split with the lm-eval tasks)."""
    from fedem.io import atomic_write_text

    rows = [
        json.dumps({"lang": lang, "text": t}, ensure_ascii=False)
        for lang, v in heldout.docs.items()
        for t in v
    ]
    return atomic_write_text(path, "\n".join(rows) + "\n")


def sample(heldout: Heldout, languages: Sequence[str], per_language: int, seed: int) -> dict[str, list[str]]:
    """Up to ``per_language`` documents of each language, drawn without replacement.

    The draw for a language depends only on (its documents, ``seed``, the language code), so
    adding a language to the policy does not change the others' samples.
    """
    out = {}
    for lang in languages:
        docs = heldout.docs.get(lang, ())
        rng = np.random.default_rng([seed, zlib.crc32(lang.encode())])
        k = min(per_language, len(docs))
        idx = np.sort(rng.choice(len(docs), size=k, replace=False)) if k else []
        out[lang] = [docs[i] for i in idx]
    return out
