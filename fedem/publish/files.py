"""What a checkpoint repo may hold, and how much of it a download may fetch.

A checkpoint is a plain Hugging Face model folder plus fedem's card and provenance, and nothing
else: the hub's own rules (:mod:`fedem.hub.rules`) admit any ``*.safetensors``/``*.json``/
``*.md``/``*.yaml`` file, which is right for adapters and too loose for the base everybody
downloads. Here the names are fixed (weights, shards and their index, configs, tokenizer, card,
``fedem.json``, ``config.yaml``), the folder is flat, and shards must be one complete set.

The caps are sized for the largest preset: ``2.8b`` as Mamba-1 has 2.64e9 parameters, 10.6 GB
in fp32; 12 GiB leaves ~20% for the small files and a different split of the same weights,
and a test keeps the cap within 1.5x of that figure so it cannot drift into "unbounded".
The adapter caps (8 files, 512 MiB) are the hub's defaults and stay untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from fedem.errors import ModelError
from fedem.names import CARD, MODEL_CONFIG, MODEL_WEIGHTS, PROVENANCE, RUN_CONFIG

GiB = 1 << 30
MiB = 1 << 20

INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json")
CHECKPOINT_FILES: tuple[str, ...] = (
    MODEL_WEIGHTS,
    INDEX,
    MODEL_CONFIG,
    "generation_config.json",
    *TOKENIZER_FILES,
    CARD,
    PROVENANCE,
    RUN_CONFIG,
)
SHARD_RE = re.compile(r"model-(\d{5})-of-(\d{5})\.safetensors")
MAX_SHARDS = 64

CHECKPOINT_MAX_FILES = len(CHECKPOINT_FILES) + MAX_SHARDS
CHECKPOINT_MAX_BYTES = 12 * GiB
# Each small file (fedem.json of a merge lists its adapters; an index lists every tensor).
CHECKPOINT_MAX_TEXT_BYTES = 16 * MiB


def is_checkpoint_file(name: str) -> bool:
    """Whether ``name`` (a flat file name) may be part of a checkpoint."""
    return name in CHECKPOINT_FILES or SHARD_RE.fullmatch(name) is not None


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The files of checkpoint folder ``folder``, sorted; ModelError (one line) for anything else.

    Refused: a missing folder, sub-folders, symlinks and special files, any name outside
    :data:`CHECKPOINT_FILES` and the shard pattern, a shard set that is incomplete or mixed
    with a single ``model.safetensors``, too many files or bytes, an oversized small file.
    Judged from ``lstat`` alone: nothing is opened.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a checkpoint folder")
    out, total = [], 0
    for p in sorted(folder.iterdir()):
        st = p.lstat()
        if p.is_symlink() or not p.is_file():
            raise ModelError(
                f"{folder}: {p.name} is not a regular file (checkpoints are flat folders of files)"
            )
        if not is_checkpoint_file(p.name):
            raise ModelError(
                f"{folder}: {p.name!r} is not a checkpoint file (allowed: {', '.join(CHECKPOINT_FILES)}, "
                "model-NNNNN-of-NNNNN.safetensors)"
            )
        if not p.name.endswith(".safetensors") and st.st_size > CHECKPOINT_MAX_TEXT_BYTES:
            raise ModelError(
                f"{folder}: {p.name} is {st.st_size:,} bytes, over {CHECKPOINT_MAX_TEXT_BYTES:,}"
            )
        total += st.st_size
        out.append(p)
    if len(out) > CHECKPOINT_MAX_FILES:
        raise ModelError(f"{folder}: {len(out)} files, over the checkpoint cap of {CHECKPOINT_MAX_FILES}")
    if total > CHECKPOINT_MAX_BYTES:
        raise ModelError(f"{folder}: {total:,} bytes, over the checkpoint cap of {CHECKPOINT_MAX_BYTES:,}")
    _check_shards(folder, [p.name for p in out])
    return out


def _check_shards(folder: Path, names: list[str]) -> None:
    shards = [m for m in map(SHARD_RE.fullmatch, names) if m]
    if not shards:
        if INDEX in names:
            raise ModelError(f"{folder}: {INDEX} without model-NNNNN-of-NNNNN.safetensors shards")
        return
    if MODEL_WEIGHTS in names:
        raise ModelError(f"{folder}: both {MODEL_WEIGHTS} and shards; a checkpoint holds one set of weights")
    if INDEX not in names:
        raise ModelError(f"{folder}: shards without {INDEX}")
    counts = {int(m.group(2)) for m in shards}
    (n,) = counts if len(counts) == 1 else (None,)
    if n is None or n > MAX_SHARDS or sorted(int(m.group(1)) for m in shards) != list(range(1, n + 1)):
        raise ModelError(
            f"{folder}: shards must be one complete set model-00001-of-N … model-N-of-N with N <= {MAX_SHARDS}"
        )
