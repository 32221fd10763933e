"""Loading what evaluation scores: a base model folder, and adapters validated against it.

The folder resolvers and the inference loader have their homes below (``fedem.model``,
``fedem.adapter``); they are re-exported here for ``fedem.evaluate`` and ``fedem.gate``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fedem.adapter import package as pkg
from fedem.adapter.base import BaseInfo
from fedem.adapter.load import load_for_inference
from fedem.adapter.package import resolve_adapter_dir
from fedem.adapter.validate import AdapterReport, validate_adapter
from fedem.evaluate.delta import LoraDelta, read_delta
from fedem.model import load_model, resolve_model_dir, weights_sha256

__all__ = [
    "Base",
    "load_adapter",
    "load_base",
    "load_for_inference",
    "resolve_adapter_dir",
    "resolve_model_dir",
]


@dataclasses.dataclass
class Base:
    """A loaded base model and what adapters are checked against."""

    folder: Path
    model: object  # a transformers Seshu, fp32, eval mode
    info: BaseInfo
    sha256: str
    provenance: dict | None


def load_base(path: str | Path) -> Base:
    """Load a model folder (or a pretrain run folder) once, for scoring many adapters on it."""
    import json

    folder = resolve_model_dir(path)
    model = load_model(folder)
    model.eval()
    sha = weights_sha256(folder)
    prov_path = folder / pkg.PROVENANCE
    try:
        prov = json.loads(prov_path.read_text()) if prov_path.is_file() else None
    except (ValueError, UnicodeDecodeError):
        prov = None
    return Base(folder, model, BaseInfo.from_model(model, sha256=sha), sha, prov)


def base_heldout_fraction(base: Base, default: float) -> float:
    """The held-out fraction the base recorded (its held-out documents are the ones it never saw)."""
    try:
        return float(base.provenance["config"]["data"]["heldout_fraction"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return default


def load_adapter(folder: str | Path, base: Base) -> tuple[AdapterReport, LoraDelta]:
    """Validate ``folder`` against ``base`` (AdapterRejected if it fails), then read its delta."""
    folder = resolve_adapter_dir(folder)
    report = validate_adapter(folder, base.info)
    return report, read_delta(folder / pkg.WEIGHTS, rank=report.rank, alpha=report.alpha)
