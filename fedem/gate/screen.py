"""Before any scoring: blind candidates, and the defences that need no held-out data.

A submission (a folder, with target languages from the registry spec) becomes a
:class:`Candidate`: its content hash (sha256 of the weights), its arrival order, its targets
and its delta. Nothing else survives. Validation reads ``fedem.json`` to check it is
well-formed, but the contributor, the paths and the self-reported ``bpb_before``/``bpb_after``
are dropped right there and never reach a decision. Validation runs on a link named
``candidate-<n>``, so even its error messages name no submitted folder.

Then, in arrival order (the earliest revision wins):

- ``no_op`` / ``norm_out_of_bounds``: ‖ΔW‖_F / ‖W‖_F over the adapted modules is outside the bounds;
- ``duplicate``: the same weights as an earlier candidate or a merged adapter;
- ``near_duplicate``: |cos(ΔW_a, ΔW_b)| ≥ the threshold (a copy, scaled or sign-flipped).

Cosines and norms of dense ``ΔW = s·B@A`` are computed without densifying, from r×r matrices:
``<B1 A1, B2 A2>_F = Σ (B1ᵀB2) ∘ (A1 A2ᵀ)``, summed over modules, in float64.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from fedem.adapter import package as pkg
from fedem.adapter.policy import DEFAULT_POLICY
from fedem.errors import AdapterRejected
from fedem.evaluate.delta import LoraDelta
from fedem.evaluate.loading import Base, load_adapter
from fedem.gate.decide import Decision, reject
from fedem.gate.policy import GatePolicy
from fedem.io import sha256_file


@dataclasses.dataclass(frozen=True)
class Submission:
    """What the nightly hands the gate, in arrival order: a folder and its target languages."""

    folder: Path
    languages: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """All the gate knows of a submission."""

    id: str  # sha256 of adapter_model.safetensors
    order: int
    targets: tuple[str, ...]
    delta: LoraDelta


def _content_id(folder: Path, order: int) -> str:
    # The id of a candidate that failed validation: its weights' hash when they are a plain
    # file of sane size, else a placeholder (it was never read).
    weights = folder / pkg.WEIGHTS
    try:
        if (
            weights.is_file()
            and not weights.is_symlink()
            and weights.stat().st_size <= DEFAULT_POLICY.max_bytes
        ):
            return sha256_file(weights)
    except OSError:
        pass
    return f"unreadable-{order}"


def blind(submissions: Sequence[Submission], base: Base, stage: Path) -> list[Candidate | Decision]:
    """Validate each submission against ``base`` and strip it to a :class:`Candidate`.

    ``stage`` is an empty private folder; failed validations become ``invalid`` or
    ``non_finite`` decisions, in the same positions.
    """
    out: list[Candidate | Decision] = []
    for i, sub in enumerate(submissions):
        link = stage / f"candidate-{i}"
        os.symlink(Path(sub.folder).resolve(), link, target_is_directory=True)
        try:
            report, delta = load_adapter(link, base)
        except AdapterRejected as err:
            reason = "non_finite" if "non-finite" in str(err) else "invalid"
            out.append(reject(_content_id(link, i), reason, str(err)))
            continue
        out.append(Candidate(id=report.weights_sha256, order=i, targets=tuple(sub.languages), delta=delta))
        del report  # contributor, paths and self-reported metrics end here
    return out


def inner(a: LoraDelta, b: LoraDelta) -> float:
    """Frobenius inner product of the two dense deltas, summed over the modules both adapt."""
    total = 0.0
    for m in set(a.factors) & set(b.factors):
        a1, b1 = (t.double() for t in a.factors[m])  # A (r1, i), B (o, r1)
        a2, b2 = (t.double() for t in b.factors[m])  # A (r2, i), B (o, r2)
        total += float(((b1.t() @ b2) * (a1 @ a2.t())).sum())  # (r1, r2) ∘ (r1, r2)
    return a.scale * b.scale * total


def norm(d: LoraDelta) -> float:
    return math.sqrt(max(inner(d, d), 0.0))


def cosine(a: LoraDelta, b: LoraDelta) -> float:
    na, nb = norm(a), norm(b)
    return inner(a, b) / (na * nb) if na > 0 and nb > 0 else 0.0


def relative_norm(d: LoraDelta, model: torch.nn.Module) -> float:
    """‖ΔW‖_F / ‖W‖_F over the modules ``d`` adapts."""
    w2 = sum(float(model.get_submodule(m).weight.detach().double().pow(2).sum()) for m in d.factors)
    return norm(d) / math.sqrt(w2) if w2 > 0 else math.inf


def screen(
    items: Sequence[Candidate | Decision],
    merged: Sequence[tuple[str, LoraDelta]],
    policy: GatePolicy,
    model: torch.nn.Module,
) -> list[Candidate | Decision]:
    """Apply the data-free defences in arrival order; survivors stay Candidates."""
    earlier: list[tuple[str, str, LoraDelta]] = [(f"merged adapter {i[:12]}", i, d) for i, d in merged]
    out: list[Candidate | Decision] = []
    for c in items:
        if isinstance(c, Decision):
            out.append(c)
            continue
        rel = relative_norm(c.delta, model)
        if not math.isfinite(rel):
            out.append(reject(c.id, "non_finite", "its delta norm is not finite"))
            continue
        if rel < policy.min_delta_norm:
            out.append(reject(c.id, "no_op", f"‖ΔW‖/‖W‖ = {rel:.2e} < {policy.min_delta_norm:g}"))
            continue
        if rel > policy.max_delta_norm:
            out.append(
                reject(c.id, "norm_out_of_bounds", f"‖ΔW‖/‖W‖ = {rel:.2e} > {policy.max_delta_norm:g}")
            )
            continue
        same = next((label for label, i, _ in earlier if i == c.id), None)
        if same:
            out.append(reject(c.id, "duplicate", f"the same weights as {same}"))
            continue
        near = next(
            (
                (label, cos)
                for label, _, d in earlier
                if abs(cos := cosine(c.delta, d)) >= policy.duplicate_cosine
            ),
            None,
        )
        if near:
            out.append(reject(c.id, "near_duplicate", f"cos(ΔW) = {near[1]:+.4f} with {near[0]}"))
            continue
        earlier.append((f"earlier candidate {c.id[:12]}", c.id, c.delta))
        out.append(c)
    return out


def targets_from_registry(folder: str | Path, registry_root: str | Path) -> tuple[str, ...]:
    """The target languages of the adapter in ``folder``, from its registry spec.

    Only the adapter's name is read from its ``fedem.json`` (size-capped), to find the spec.
    """
    from fedem.errors import RegistryError
    from fedem.registry.store import snapshot_from_dir

    meta = pkg.read_json(Path(folder) / pkg.PROVENANCE, max_bytes=DEFAULT_POLICY.max_text_bytes)
    name = meta.get("adapter")
    adapters = snapshot_from_dir(registry_root).adapters
    if not isinstance(name, str) or name not in adapters:
        raise RegistryError(f"{Path(folder).name}: adapter {str(name)[:64]!r} is not in the registry")
    return tuple(adapters[name].spec.languages)
