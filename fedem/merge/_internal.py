"""The fedem internals merge needs beyond the package top levels, in one place.

fedem is being re-layered (the LoRA format moves into ``fedem.adapter``, ``resolve_model_dir``
into ``fedem.model``). Everything ``fedem.merge`` takes from below a package's ``__init__`` is
imported or restated here, so the move touches this file only.
"""

from __future__ import annotations

from pathlib import Path

from fedem.adapter.header import ITEMSIZE, TensorInfo, read_header
from fedem.adapter.package import CONFIG as ADAPTER_CONFIG
from fedem.adapter.package import PROVENANCE, WEIGHTS, get_path, parse_json_object

__all__ = [
    "ADAPTER_CONFIG",
    "ITEMSIZE",
    "PROVENANCE",
    "WEIGHTS",
    "TensorInfo",
    "get_path",
    "parse_json_object",
    "read_header",
    "resolve_adapter_dir",
    "resolve_model_dir",
]


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder, or a pretrain run folder holding ``model/`` (as fedem.train.jobs resolves it)."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


def resolve_adapter_dir(path: str | Path) -> Path:
    """An adapter folder, or a finetune run folder holding ``adapter/``."""
    path = Path(path)
    return path / "adapter" if (path / "adapter" / ADAPTER_CONFIG).is_file() else path
