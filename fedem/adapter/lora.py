"""LoRA on Seshu: its settings, which modules are safe to target, and how an adapter is built,
read and (re)loaded trainable.

Target policy (BRIEF §3, verified against transformers' Mamba code):

- ``in_proj`` is the only target that trains and evaluates identically on every path
  (CPU PyTorch, mamba-ssm kernels, merged or unmerged), for Mamba-1 and Mamba-2.
- Everything else is refused with the reason, because it silently breaks something.

Loading never goes through ``PeftModel.from_pretrained``: that falls back to a pickled
``adapter_model.bin`` and loads frozen by default (the 2024 relay trained 0 parameters).
We read ``adapter_model.safetensors`` ourselves and check every key and shape.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from fedem.adapter.package import read_json
from fedem.config import Invalid
from fedem.errors import AdapterRejected, ConfigError, ModelError
from fedem.names import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ARCHS, PICKLE_SUFFIXES

# in_proj for every architecture in fedem.names.ARCHS (BRIEF §3: the only target safe everywhere).
SAFE_TARGETS: dict[str, frozenset[str]] = {arch: frozenset({"in_proj"}) for arch in ARCHS}

MAX_ALPHA = 4096

REFUSED_TARGETS: dict[str, str] = {
    "dt_proj": "transformers computes dt_proj.weight @ x directly, so a dt_proj LoRA never trains, "
    "and it is applied only once merged: evaluation and merged output would disagree",
    "out_proj": "PEFT cannot wrap Mamba's out_proj (the fused kernels read its weight directly)",
    "conv1d": "PEFT cannot wrap Mamba's depthwise conv1d",
    "x_proj": "the mamba-ssm fused kernel reads x_proj.weight directly on GPU, so the LoRA is "
    "ignored there and CPU and GPU training would disagree",
}


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """LoRA hyper-parameters. Targets are checked per architecture (see :func:`check_targets`)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: tuple[str, ...] = ("in_proj",)

    def __post_init__(self):
        if not 1 <= self.r <= 1024:
            raise Invalid("r", "an integer between 1 and 1024")
        # alpha/r scales every update: past a few thousand it only overflows (non-finite outputs).
        if not 1 <= self.alpha <= MAX_ALPHA:
            raise Invalid("alpha", f"an integer from 1 to {MAX_ALPHA}")
        if not 0 <= self.dropout < 1:
            raise Invalid("dropout", "a number in [0, 1)")
        if not self.targets:
            raise Invalid("targets", "at least one module name, e.g. [in_proj]")


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


# adapter_config.json fields that change what the weights mean while fedem's loader (which
# rebuilds the LoraConfig from r, alpha, dropout and targets) would ignore them.
_MUST_BE_OFF: dict[str, tuple] = {
    "use_dora": (None, False),
    "use_rslora": (None, False),
    "lora_bias": (None, False),
    "fan_in_fan_out": (None, False),
    "bias": (None, "none"),
    "modules_to_save": (None, []),
    "rank_pattern": (None, {}),
    "alpha_pattern": (None, {}),
    "layers_to_transform": (None,),
    "layers_pattern": (None, []),
    "trainable_token_indices": (None,),
    "target_parameters": (None, []),
    "use_qalora": (None, False),
    "use_bdlora": (None, False),
}


def _is_number(v: object) -> bool:
    # bool is an int to Python, and NaN/inf pass float(): neither is a setting.
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def lora_spec_from_config(
    cfg: dict, arch: str, *, max_rank: int = 1024, where: str = ADAPTER_CONFIG
) -> LoraSpec:
    """The :class:`LoraSpec` an ``adapter_config.json`` describes, or AdapterRejected (one line).

    This is the one check of a saved LoRA config: validation, loading and merging all call it.
    """
    if cfg.get("peft_type") != "LORA":
        raise AdapterRejected(f"{where}: peft_type {repr(cfg.get('peft_type'))[:40]}, expected 'LORA'")
    r, alpha, dropout = cfg.get("r"), cfg.get("lora_alpha"), cfg.get("lora_dropout", 0.0)
    if type(r) is not int or r < 1:
        raise AdapterRejected(f"{where}: r must be a positive integer (got {repr(r)[:40]})")
    if r > max_rank:
        raise AdapterRejected(f"{where}: rank r={r} exceeds the policy maximum of {max_rank}")
    # An integer: LoraSpec keeps alpha as an int, so 16.9 would be trained and merged as 16, a
    # different scale than its author used. 16.0 is fine.
    if not _is_number(alpha) or alpha != int(alpha) or not alpha > 0:
        raise AdapterRejected(f"{where}: lora_alpha must be a positive integer (got {repr(alpha)[:40]})")
    if dropout is None:
        dropout = 0.0
    if not _is_number(dropout):
        raise AdapterRejected(f"{where}: lora_dropout must be a number in [0, 1) (got {repr(dropout)[:40]})")
    for field, allowed in _MUST_BE_OFF.items():
        if cfg.get(field) not in allowed:
            raise AdapterRejected(
                f"{where}: {field}={repr(cfg[field])[:40]} is not supported (fedem adapters are plain LoRA)"
            )
    base_path = cfg.get("base_model_name_or_path")
    if base_path is not None and (
        not isinstance(base_path, str)
        or base_path.startswith(("/", "~", "\\"))
        or ":" in base_path
        or ".." in base_path
    ):
        raise AdapterRejected(
            f"{where}: base_model_name_or_path {repr(base_path)[:60]} looks like a local path; "
            "a published adapter names its base by a hub id or a plain name"
        )
    targets = cfg.get("target_modules")
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise AdapterRejected(f"{where}: target_modules must be a non-empty list of module names")
    if arch not in SAFE_TARGETS:
        raise AdapterRejected(f"{where}: architecture {str(arch)[:40]!r} is not one of {', '.join(ARCHS)}")
    try:
        check_targets(targets, arch, field=f"{where}: target_modules")
        return LoraSpec(r=r, alpha=int(alpha), dropout=float(dropout), targets=tuple(sorted(set(targets))))
    except ConfigError as err:
        raise AdapterRejected(str(err)) from None
    except Invalid as err:
        raise AdapterRejected(f"{where}: {err}") from None


def read_adapter_config(path: Path, arch: str, *, max_bytes: int = 1 << 20) -> LoraSpec:
    """The LoraSpec of a saved adapter folder, after checking its files and config."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterRejected(f"{path}: adapter folder not found")
    pickles = sorted(p.name for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise AdapterRejected(f"{path}: refusing pickle files {pickles}; adapters must be safetensors")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (path / name).is_file():
            raise AdapterRejected(f"{path}: missing {name}")
    cfg = read_json(path / ADAPTER_CONFIG, max_bytes=max_bytes)
    return lora_spec_from_config(cfg, arch, where=str(path / ADAPTER_CONFIG))


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
