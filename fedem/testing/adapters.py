"""Synthetic adapter packages: valid fedem LoRA packages in milliseconds, without training.

For tests and benchmarks of what consumes adapters (validation, merging). The factors are
random but non-zero (a freshly initialised LoRA has B = 0, whose merge changes nothing and so
proves nothing). The package is what ``fedem finetune`` writes: ``adapter_model.safetensors``
with PEFT's keys, PEFT's ``adapter_config.json`` and a complete ``fedem.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from fedem.adapter import BaseInfo
from fedem.adapter.base import shapes_sha256
from fedem.io import sha256_file
from fedem.provenance import library_versions

CREATED = "2026-01-01T00:00:00+00:00"  # fixed: nothing downstream may depend on the wall clock


def write_lora_package(
    folder: str | Path,
    base: BaseInfo,
    *,
    base_sha256: str,
    name: str = "synthetic",
    r: int = 4,
    alpha: int = 8,
    seed: int = 0,
    targets: tuple[str, ...] = ("in_proj",),
    std: float = 0.02,
    dtype: torch.dtype = torch.float32,
    heldout_fraction: float | None = 0.05,
) -> Path:
    """Write a rank-``r`` LoRA on ``targets`` of ``base`` into ``folder`` (created); return it.

    A is N(0, 1/i) and B is N(0, std²), so s·B·A has entries of about s·√r·std/√i.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    shapes = base.lora_shapes(targets, r)
    for key, (rows, cols) in sorted(shapes.items()):
        if key.endswith("lora_A.weight"):  # (r, i)
            t = torch.randn(rows, cols, generator=gen) / cols**0.5
        else:  # (o, r)
            t = torch.randn(rows, cols, generator=gen) * std
        tensors[key] = t.to(dtype).contiguous()
    weights = folder / "adapter_model.safetensors"
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": list(targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "base_model_name_or_path": None,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    versions = library_versions()
    meta = {
        "kind": "seshu-lora-adapter",
        "adapter": name,
        "revision": None,
        "parent": None,
        "base": {
            "path": "base",
            "arch": base.arch,
            "sha256": base_sha256,
            "lora_shapes_sha256": shapes_sha256(shapes),  # as fedem finetune records it
        },
        "contributor": "synthetic",
        "created": CREATED,
        "lora": {"r": r, "alpha": alpha, "dropout": 0.0, "targets": list(targets)},
        "config": {"data": {"heldout_fraction": heldout_fraction}},
        "data": {"fingerprint": f"synthetic-{seed}"},
        "metrics": {"steps": 1, "tokens": 1, "bpb_before": 8.0, "bpb_after": 7.9},
        "versions": {k: versions.get(k) or "none" for k in ("fedem", "torch", "peft")},
        "weights_sha256": sha256_file(weights),
    }
    (folder / "fedem.json").write_text(json.dumps(meta, indent=2))
    return folder
