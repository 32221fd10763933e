"""The adapters of a merge: validated, agreeing on one base, and opened for reading their factors.

Every adapter goes through :func:`fedem.adapter.validate_adapter` against the base before any of
its tensors is read (files, provenance, LoRA settings, shapes against the base, finite values).
Then the weights file is opened once and hashed through that descriptor: the bytes merged are
the bytes validated, even if the folder changes meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from fedem.adapter import AdapterReport, BaseInfo, validate_adapter
from fedem.errors import AdapterRejected, ConfigError
from fedem.merge._internal import resolve_adapter_dir
from fedem.merge.delta import LoraTerm
from fedem.merge.tensors import TensorFile
from fedem.names import ADAPTER_WEIGHTS as WEIGHTS
from fedem.names import PROVENANCE
from fedem.provenance import get_path

_PREFIX, _A, _B = "base_model.model.", ".lora_A.weight", ".lora_B.weight"


@dataclasses.dataclass
class AdapterInput:
    """One validated adapter with its weights file held open."""

    report: AdapterReport
    weight: float  # wₖ
    revision: str | None  # the hub revision, when known
    heldout_fraction: float | None  # of the data it trained on (for the merged model's provenance)
    file: TensorFile

    @property
    def scale(self) -> float:
        return self.report.alpha / self.report.rank

    def modules(self) -> list[str]:
        """Module paths this adapter changes (``backbone.layers.0.mixer.in_proj`` …)."""
        return sorted(k[len(_PREFIX) : -len(_A)] for k in self.file.tensors if k.endswith(_A))

    def term(self, module: str, device: torch.device | str = "cpu") -> LoraTerm:
        """This adapter's factors for one module, as a LoraTerm."""
        A = self.file.read(f"{_PREFIX}{module}{_A}").to(device)  # (r, i)
        B = self.file.read(f"{_PREFIX}{module}{_B}").to(device)  # (o, r)
        return LoraTerm(A, B, self.scale, self.weight, self.report.weights_sha256)

    def record(self) -> dict:
        """What the merged model's fedem.json says about this adapter."""
        r = self.report
        return {
            "name": r.name,
            "weights_sha256": r.weights_sha256,
            "revision": self.revision,
            "parent_revision": r.parent_revision,
            "contributor": r.contributor,
            "rank": r.rank,
            "alpha": r.alpha,
            "targets": list(r.targets),
            "weight": self.weight,
        }


def open_adapters(
    folders: Sequence[str | Path],
    base: BaseInfo,
    weights: Sequence[float],
    *,
    revisions: Sequence[str | None] | None = None,
) -> list[AdapterInput]:
    """Validate every adapter against ``base`` and open them; refuse adapters of different bases.

    ``base.sha256`` None (a sharded or in-memory base) checks shapes and architecture only; the
    caller then checks the adapters' recorded base hash itself (see :func:`common_base_sha256`).
    """
    if revisions is not None and len(revisions) != len(folders):
        raise ConfigError(f"revisions: {len(revisions)} given for {len(folders)} adapters")
    revs = list(revisions) if revisions is not None else [None] * len(folders)
    reports = [validate_adapter(resolve_adapter_dir(f), base) for f in folders]
    common_base_sha256(reports)
    opened: list[AdapterInput] = []
    try:
        for report, w, rev in zip(reports, weights, revs, strict=True):
            meta = json.loads((report.folder / PROVENANCE).read_text(encoding="utf-8"))  # validated, capped
            recorded = meta.get("revision") if isinstance(meta.get("revision"), str) else None
            file = TensorFile(report.folder / WEIGHTS, error=AdapterRejected)
            heldout = get_path(meta, "config.data.heldout_fraction")
            if isinstance(heldout, bool) or not isinstance(heldout, (int, float)):
                heldout = None
            opened.append(AdapterInput(report, w, rev or recorded, heldout, file))
            if file.sha256() != report.weights_sha256:
                raise AdapterRejected(f"{report.folder}: {WEIGHTS} changed while it was being validated")
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(adapters: Sequence[AdapterInput]) -> None:
    for a in adapters:
        a.file.close()


def common_base_sha256(reports: Sequence[AdapterReport]) -> str:
    """The base weights sha256 every adapter records; AdapterRejected when two disagree."""
    first = reports[0]
    for r in reports[1:]:
        if r.base_sha256 != first.base_sha256:
            raise AdapterRejected(
                f"adapters for different bases: {first.name} was trained on base sha256 "
                f"{first.base_sha256[:12]}…, {r.name} on {r.base_sha256[:12]}…"
            )
    return first.base_sha256


def plan(adapters: Sequence[AdapterInput]) -> dict[str, list[int]]:
    """Base weight name -> the indices of the adapters that change it, in the order given."""
    out: dict[str, list[int]] = {}
    for k, a in enumerate(adapters):
        for module in a.modules():
            out.setdefault(f"{module}.weight", []).append(k)
    return out


def terms_for(
    adapters: Sequence[AdapterInput], name: str, indices: Sequence[int], device="cpu"
) -> list[LoraTerm]:
    module = name.removesuffix(".weight")
    return [adapters[k].term(module, device) for k in indices]
