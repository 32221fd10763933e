"""The merge held in memory: fold adapters into a loaded base model, for scoring without writing it.

The nightly gate scores candidate merges on a model it already holds; writing each to disk
first would cost a full write and read per candidate. :func:`merge_into_model` runs the same
validation and the same per-tensor code (:func:`fedem.merge.methods.merged_weight`) as
:func:`fedem.merge.merge_to_dir`, so on the same device a weight merged here has the same bytes
as the one the streaming merge writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from fedem.adapter import BaseInfo
from fedem.errors import ModelError
from fedem.merge import inputs as inp
from fedem.merge.methods import merged_weight, one_thread
from fedem.merge.spec import MergeSpec


def merge_into_model(
    model: torch.nn.Module,
    adapters: Sequence[Path],
    spec: MergeSpec,
    *,
    base_sha256: str | None = None,
) -> None:
    """Merge ``adapters`` into ``model``'s weights in place (fp32 accumulate, one rounding).

    ``model`` is the plain base (a transformers Seshu, any dtype and device), not a PEFT-wrapped
    one. Every adapter is validated against its shapes and architecture, and all must record the
    same base; pass ``base_sha256`` (the base's identity, :func:`fedem.model.weights_sha256`) to also
    check it is the base they were trained on. All checks run before the first weight changes;
    an I/O error midway (a disk failing) leaves the model partly merged, so discard it then.
    """
    with one_thread():
        _merge_into_model(model, adapters, spec, base_sha256)


def _merge_into_model(model, adapters, spec, base_sha256) -> None:
    if hasattr(model, "peft_config"):
        raise ModelError(
            "merge_into_model: pass the base model, not a PEFT-wrapped one (merge_and_unload it or reload the base)"
        )
    info = BaseInfo.from_model(model, sha256=base_sha256)
    weights = spec.weights_for(len(adapters))
    adapters_in = inp.open_adapters(adapters, info, weights)
    try:
        planned = inp.plan(adapters_in)
        params = {name: model.get_parameter(name) for name in planned}
        with torch.no_grad():
            for name, indices in planned.items():
                param = params[name]  # (o, i)
                terms = inp.terms_for(adapters_in, name, indices, device=param.device)
                param.copy_(merged_weight(param.detach(), terms, spec, name))
    finally:
        inp.close_all(adapters_in)
