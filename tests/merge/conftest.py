"""Merge fixtures: tiny Seshu bases built from config (fp32 and bf16), and synthetic adapter packages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from fedem.adapter import BaseInfo
from fedem.io import sha256_file
from fedem.model import build_model, save_model
from fedem.testing.adapters import write_lora_package


@dataclasses.dataclass(frozen=True)
class Base:
    """A saved base: its folder, the sha256 adapters record, and its shapes."""

    dir: Path
    sha256: str
    info: BaseInfo

    def adapter(self, folder: Path, seed: int, **kw) -> Path:
        """A synthetic adapter package for this base (rank 4, α 8 unless given)."""
        kw.setdefault("name", f"a{seed}")
        return write_lora_package(folder, self.info, base_sha256=self.sha256, seed=seed, **kw)


def _base(root: Path, arch: str, dtype: torch.dtype) -> Base:
    model = build_model("tiny", arch, seed=0).to(dtype)
    save_model(model, root / "base")
    return Base(root / "base", sha256_file(root / "base" / "model.safetensors"), BaseInfo.from_model(model))


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Base:
    """A tiny Mamba-2 Seshu in fp32."""
    return _base(tmp_path_factory.mktemp("merge_base"), "mamba2", torch.float32)


@pytest.fixture(scope="session")
def base_bf16_mamba1(tmp_path_factory) -> Base:
    """A tiny Mamba-1 Seshu in bf16 (the layout mergekit knows, the dtype real merges write)."""
    return _base(tmp_path_factory.mktemp("merge_base_m1"), "mamba", torch.bfloat16)


@pytest.fixture(scope="session")
def adapters(base, tmp_path_factory) -> list[Path]:
    """Three adapters of different ranks and scales on ``base``."""
    root = tmp_path_factory.mktemp("merge_adapters")
    return [
        base.adapter(root / "a0", 0, r=4, alpha=8),
        base.adapter(root / "a1", 1, r=2, alpha=8),
        base.adapter(root / "a2", 2, r=8, alpha=4),
    ]


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model folder (single file or shards), by name."""
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():  # noqa: SIM118 (safe_open is not a dict)
                out[k] = st.get_tensor(k)
    return out


def tensor_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def lora_factors(adapter: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Base weight name -> (A (r, i), B (o, r)) in float64, read with safetensors' own loader."""
    out = {}
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as st:
        for k in st.keys():  # noqa: SIM118
            if k.endswith(".lora_A.weight"):
                module = k.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
                B = st.get_tensor(k.replace("lora_A", "lora_B"))
                out[f"{module}.weight"] = (st.get_tensor(k).double().numpy(), B.double().numpy())
    return out


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text
