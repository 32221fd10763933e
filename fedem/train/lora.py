"""LoRA on Seshu: which modules are safe to target, and how an adapter is (re)loaded trainable.

Target policy (BRIEF §3, verified against transformers' Mamba code):

- ``in_proj`` is the only target that trains and evaluates identically on every path
  (CPU PyTorch, mamba-ssm kernels, merged or unmerged), for Mamba-1 and Mamba-2.
- Everything else is refused with the reason, because it silently breaks something.

Loading never goes through ``PeftModel.from_pretrained``: that falls back to a pickled
``adapter_model.bin`` and loads frozen by default (the 2024 relay trained 0 parameters).
We read ``adapter_model.safetensors`` ourselves and check every key and shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from fedem.errors import ConfigError, ModelError
from fedem.model.seshu import PICKLE_SUFFIXES
from fedem.train.config import LoraSpec

SAFE_TARGETS: dict[str, frozenset[str]] = {"mamba2": frozenset({"in_proj"}), "mamba": frozenset({"in_proj"})}

REFUSED_TARGETS: dict[str, str] = {
    "dt_proj": "transformers computes dt_proj.weight @ x directly, so a dt_proj LoRA never trains, "
    "and it is applied only once merged: evaluation and merged output would disagree",
    "out_proj": "PEFT cannot wrap Mamba's out_proj (the fused kernels read its weight directly)",
    "conv1d": "PEFT cannot wrap Mamba's depthwise conv1d",
    "x_proj": "the mamba-ssm fused kernel reads x_proj.weight directly on GPU, so the LoRA is "
    "ignored there and CPU and GPU training would disagree",
}

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def check_targets(targets, arch: str, field: str = "lora.targets") -> tuple[str, ...]:
    """Refuse unsafe or unknown LoRA targets with a one-line reason."""
    safe = SAFE_TARGETS[arch]
    for t in targets:
        if t in REFUSED_TARGETS:
            raise ConfigError(f"{field}: {t!r} is refused: {REFUSED_TARGETS[t]}; use in_proj")
        if t not in safe:
            raise ConfigError(
                f"{field}: {t!r} is not a valid target for {arch} (expected one of {sorted(safe)})"
            )
    return tuple(targets)


def add_lora(model, spec: LoraSpec, arch: str) -> PeftModel:
    """Wrap ``model`` with a fresh, trainable LoRA adapter."""
    check_targets(spec.targets, arch)
    cfg = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def read_adapter_config(path: Path, arch: str) -> LoraSpec:
    """The LoraSpec of a saved adapter, after checking its files and targets."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: adapter folder not found")
    pickles = sorted(p.name for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(f"{path}: refusing pickle files {pickles}; adapters must be safetensors")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (path / name).is_file():
            raise ModelError(f"{path}: missing {name}")
    try:
        cfg = json.loads((path / ADAPTER_CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path / ADAPTER_CONFIG}: invalid JSON ({err})") from None
    if cfg.get("peft_type") != "LORA":
        raise ModelError(f"{path / ADAPTER_CONFIG}: peft_type {cfg.get('peft_type')!r}, expected 'LORA'")
    targets = cfg.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else sorted(targets)
    check_targets(targets, arch, field=f"{path / ADAPTER_CONFIG}: target_modules")
    try:
        if int(cfg["lora_alpha"]) != cfg["lora_alpha"]:  # int() would silently turn 16.9 into 16
            raise ValueError(f"lora_alpha {cfg['lora_alpha']!r} is not an integer")
        return LoraSpec(
            r=int(cfg["r"]),
            alpha=int(cfg["lora_alpha"]),
            dropout=float(cfg.get("lora_dropout", 0.0)),
            targets=tuple(targets),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # OverflowError: int(inf)
        raise ModelError(f"{path / ADAPTER_CONFIG}: bad LoRA fields ({err})") from None


def load_trainable(model, path: str | Path, arch: str) -> PeftModel:
    """Continue an existing adapter: build it on ``model`` and load its weights, trainable.

    A load that fails is an error, never a silent fresh start. Every key must match in name
    and shape, and the result must have trainable parameters.
    """
    path = Path(path)
    spec = read_adapter_config(path, arch)
    peft_model = add_lora(model, spec, arch)
    try:
        saved = load_file(path / ADAPTER_WEIGHTS)
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise ModelError(f"{path / ADAPTER_WEIGHTS}: unreadable safetensors ({err})") from None
    expected = get_peft_model_state_dict(peft_model)
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{path / ADAPTER_WEIGHTS}: keys do not match this base model "
            f"(missing {missing[:2]}{'…' if len(missing) > 2 else ''}, unexpected {unexpected[:2]})"
        )
    for k, v in saved.items():
        if v.shape != expected[k].shape:
            raise ModelError(
                f"{path / ADAPTER_WEIGHTS}: {k} has shape {tuple(v.shape)}, base expects {tuple(expected[k].shape)}"
            )
        if not torch.isfinite(v).all():
            raise ModelError(f"{path / ADAPTER_WEIGHTS}: {k} has non-finite values")
    set_peft_model_state_dict(peft_model, saved)
    n = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    if n == 0:
        raise ModelError(f"{path}: adapter loaded with 0 trainable parameters")
    return peft_model


def adapter_state(peft_model) -> dict[str, torch.Tensor]:
    """The adapter's tensors as saved (PEFT key names), detached copies."""
    # On the CPU: compared before and after training, across the move to the accelerator.
    return {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(peft_model).items()}
