"""The base model an adapter is checked against: its architecture, identity and layer shapes.

Validation needs only the base's config (for the shapes of the layers LoRA may wrap) and the
sha256 of its weights (its identity), never its tensors: the model is built on the ``meta``
device, which allocates nothing, so checking against a 2.8b base costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from fedem.errors import ModelError


@dataclasses.dataclass(frozen=True)
class BaseInfo:
    """What an adapter must agree with.

    ``linear_shapes`` maps each ``nn.Linear`` module path (as in ``model.named_modules()``, e.g.
    ``backbone.layers.0.mixer.in_proj``) to its weight shape ``(out_features, in_features)``.
    ``sha256`` (:func:`fedem.model.seshu.weights_sha256`), ``repo`` and ``revision`` are None when unknown.
    """

    arch: str
    linear_shapes: dict[str, tuple[int, int]]
    sha256: str | None = None
    repo: str | None = None
    revision: str | None = None

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        *,
        sha256: str | None = None,
        repo: str | None = None,
        revision: str | None = None,
    ) -> BaseInfo:
        """From a loaded (or meta) transformers model. A PEFT-wrapped model is unwrapped first."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        shapes = {}
        for name, mod in inner.named_modules():
            if isinstance(mod, torch.nn.Linear):
                shapes[name] = (int(mod.out_features), int(mod.in_features))
        return cls(inner.config.model_type, shapes, sha256, repo, revision)

    @classmethod
    def from_config(cls, config, **facts) -> BaseInfo:
        """From a transformers config: the model is built on the meta device (no memory)."""
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return cls.from_model(model, **facts)

    @classmethod
    def from_dir(cls, path: str | Path, *, repo: str | None = None, revision: str | None = None) -> BaseInfo:
        """From a Seshu model folder (or a pretrain run folder holding ``model/``)."""
        from transformers import AutoConfig

        from fedem.model.seshu import check_model_dir, resolve_model_dir, weights_sha256

        path = check_model_dir(resolve_model_dir(path))
        try:
            json.loads((path / "config.json").read_text())
            config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError) as err:
            raise ModelError(f"{path}: unreadable config.json ({str(err).splitlines()[0]})") from None
        return cls.from_config(config, sha256=weights_sha256(path), repo=repo, revision=revision)

    def lora_shapes(self, targets: tuple[str, ...] | list[str], r: int) -> dict[str, tuple[int, int]]:
        """PEFT state-dict key → shape for a rank-``r`` LoRA on ``targets``.

        For a Linear of weight (o, i): ``lora_A`` is (r, i) and ``lora_B`` is (o, r), keyed
        ``base_model.model.<module path>.lora_{A,B}.weight`` as ``get_peft_model_state_dict`` saves.
        """
        out: dict[str, tuple[int, int]] = {}
        for name, (o, i) in self.linear_shapes.items():
            if name.rsplit(".", 1)[-1] in targets:
                out[f"base_model.model.{name}.lora_A.weight"] = (r, i)
                out[f"base_model.model.{name}.lora_B.weight"] = (o, r)
        return out


def shapes_sha256(shapes: dict[str, tuple[int, ...]]) -> str:
    """The identity of a key → shape map: what an adapter records of the base it was trained on,
    so that a push (which has no base at hand) can check the tensors fit it."""
    canonical = json.dumps({k: list(v) for k, v in sorted(shapes.items())}, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def as_base_info(base) -> BaseInfo | None:
    """Accept a BaseInfo, a model folder path, a transformers model or config, or None."""
    if base is None or isinstance(base, BaseInfo):
        return base
    if isinstance(base, (str, Path)):
        return BaseInfo.from_dir(base)
    if isinstance(base, torch.nn.Module):
        return BaseInfo.from_model(base)
    if hasattr(base, "model_type"):
        return BaseInfo.from_config(base)
    raise TypeError(f"cannot describe a base model from {type(base).__name__}")
