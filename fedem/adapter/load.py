"""Loading a base model with an adapter on top, for inference (scoring, generation).

Every adapter may come from anyone, so it is validated against the base before any tensor of
it is loaded (:func:`fedem.adapter.validate.validate_adapter`); then it is applied unmerged.
"""

from __future__ import annotations

from pathlib import Path

from fedem.adapter.base import BaseInfo
from fedem.adapter.lora import load_trainable
from fedem.adapter.package import resolve_adapter_dir
from fedem.adapter.validate import validate_adapter
from fedem.model.seshu import load_model, resolve_model_dir, weights_sha256


def load_for_inference(model_dir: str | Path, adapter: str | Path | None = None):
    """Base model from ``model_dir`` (a model or pretrain run folder), with ``adapter`` applied
    (unmerged) when given."""
    base_dir = resolve_model_dir(model_dir)
    model = load_model(base_dir)
    if adapter:
        folder = resolve_adapter_dir(adapter)
        validate_adapter(folder, BaseInfo.from_model(model, sha256=weights_sha256(base_dir)))
        model = load_trainable(model, folder, model.config.model_type)
    return model
