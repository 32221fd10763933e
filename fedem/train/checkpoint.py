"""Resumable training state, in safetensors and JSON only (nothing here is ever unpickled).

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` written atomically: trainable weights,
AdamW moments, the torch RNG state, and a small JSON with the step and a hash of the config.
The batch order is a pure function of the config (fedem.data.mixture), so the step alone
says which data comes next.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fedem.errors import FedemError
from fedem.io import atomic_dir

WEIGHTS = "trainable.safetensors"
OPTIM = "optimizer.safetensors"
STATE = "state.json"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"state.{idx}.{key}"] = t.detach().contiguous().cpu()
    return tensors, {"param_groups": sd["param_groups"]}


def _optimizer_from(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    # CPU and every CUDA device: dropout (e.g. LoRA dropout) draws from the device's generator.
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = state
    return out


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    states = [tensors.pop(k) for k in cuda]
    if states and torch.cuda.is_available() and len(states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states)


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    config_hash: str,
    keep: int = 2,
    extra: dict | None = None,
    scaler=None,
) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically and prune all but the newest ``keep``.

    ``scaler`` is fp16's GradScaler (None otherwise): its loss scale is training state too."""
    weights = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    opt_tensors, opt_meta = _optimizer_tensors(opt)
    final = root / f"step-{step:08d}"
    with atomic_dir(final, overwrite=True) as tmp:
        save_file(weights, tmp / WEIGHTS)
        save_file({**opt_tensors, **_rng_tensors()}, tmp / OPTIM)
        scaler_state = scaler.state_dict() if scaler is not None else None
        (tmp / STATE).write_text(
            json.dumps(
                {
                    "step": step,
                    "config_hash": config_hash,
                    "extra": extra or {},
                    "scaler": scaler_state,
                    **opt_meta,
                },
                indent=1,
            )
        )
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (half-written ones are hidden ``.tmp`` siblings)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE).is_file())


def load_checkpoint(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, config_hash: str, scaler=None
) -> tuple[int, dict]:
    """Restore weights, optimizer and RNG from ``path``; return (step to continue from, extra)."""
    meta = json.loads((path / STATE).read_text())
    if meta["config_hash"] != config_hash:
        raise FedemError(
            f"{path}: checkpoint was made with a different config; resume with the same config "
            "(see config.yaml in the output folder) or use a new --output"
        )
    weights = load_file(path / WEIGHTS)
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    if set(weights) != trainable:
        raise FedemError(f"{path}: checkpoint tensors do not match the model's trainable parameters")
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t)
    tensors = load_file(path / OPTIM)
    _restore_rng(tensors)  # pops the rng.* entries; the rest is optimizer state
    opt.load_state_dict(_optimizer_from(tensors, meta))
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    return int(meta["step"]), meta.get("extra", {})
