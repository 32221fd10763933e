"""Exact, streaming merges of LoRA adapters into the Seshu base: linear, TIES, DARE.

- :class:`MergeSpec`: the method and its parameters, validated (methods in :data:`METHODS`);
- :func:`merge_to_dir`: base folder + adapters -> a new HF model folder, one tensor at a time;
- :func:`merge_into_model`: the same merge into a model held in memory (the gate scores it);
- :class:`MergeConfig` / :func:`run`: the ``fedem merge`` job (``pipelines/merge.yaml``).

The formulas, papers and how PEFT and mergekit differ: ``docs/merging.md``.

Importing this package is cheap (no torch): the heavy modules load on first use, so the CLI
that registry workflows install without torch can still import ``fedem.merge``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedem.merge.job import MergeConfig, run
from fedem.merge.spec import METHODS, MergeSpec, Method, register_method

if TYPE_CHECKING:
    from fedem.merge.memory import merge_into_model
    from fedem.merge.stream import MergeResult, merge_to_dir

_LAZY = {
    "merge_into_model": "fedem.merge.memory",
    "merge_to_dir": "fedem.merge.stream",
    "MergeResult": "fedem.merge.stream",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fedem.merge' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "MergeConfig",
    "MergeResult",
    "MergeSpec",
    "Method",
    "merge_into_model",
    "merge_to_dir",
    "register_method",
    "run",
]
