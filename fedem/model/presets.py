"""Seshu model presets: named sizes, each buildable as Mamba-1 or Mamba-2.

A preset is a small frozen object in a registry, not a branch in an if/elif. ``tiny`` is for
tests (< 1M parameters), ``small`` is the CPU demo, and ``130m`` … ``2.8b`` mirror the widths
and depths of the published state-spaces Mamba checkpoints, for GPU users. With a 259-id byte
vocabulary instead of a 50k BPE one, the published-size presets have ~40M fewer embedding
parameters than their names suggest; the names keep the familiar shapes.

Shape letters used in fedem: b batch, l sequence length, d hidden size (d_model),
e expansion (d_inner = e·d), n SSM state size, h Mamba-2 heads, p head dim (h·p = e·d),
r LoRA rank, K number of adapters.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from transformers import Mamba2Config, MambaConfig, PretrainedConfig

from fedem.errors import ConfigError
from fedem.model.tokenizer import EOS_ID, PAD_ID, VOCAB_SIZE
from fedem.names import ARCHS

Arch = Literal["mamba2", "mamba"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """Width and depth of one Seshu size. Architecture-specific knobs have safe defaults."""

    name: str
    d_model: int
    n_layers: int
    d_state_mamba1: int = 16
    d_state_mamba2: int = 128
    head_dim: int = 64  # Mamba-2 only: h = e·d / p
    n_groups: int = 1  # Mamba-2 only
    chunk_size: int = 256  # Mamba-2 only: SSD chunk length
    expand: int = 2
    conv_kernel: int = 4
    summary: str = ""

    def hf_config(self, arch: Arch) -> PretrainedConfig:
        """The transformers config for this preset. Saved models need no fedem to load."""
        common = dict(
            vocab_size=VOCAB_SIZE,
            hidden_size=self.d_model,
            num_hidden_layers=self.n_layers,
            expand=self.expand,
            conv_kernel=self.conv_kernel,
            pad_token_id=PAD_ID,
            eos_token_id=EOS_ID,
            bos_token_id=EOS_ID,  # byte models have no BOS; lm-eval falls back to EOS as prefix
            tie_word_embeddings=True,
            use_cache=True,
        )
        if arch == "mamba2":
            d_inner = self.expand * self.d_model
            if d_inner % self.head_dim:
                raise ConfigError(
                    f"preset {self.name}: e·d={d_inner} is not divisible by head_dim={self.head_dim}"
                )
            return Mamba2Config(
                **common,
                state_size=self.d_state_mamba2,
                num_heads=d_inner // self.head_dim,
                head_dim=self.head_dim,
                n_groups=self.n_groups,
                chunk_size=self.chunk_size,
            )
        if arch == "mamba":
            # use_mambapy: the pure-PyTorch parallel scan off-GPU; the stock sequential scan's
            # backward is quadratic in l (see BRIEF §2). mamba-ssm kernels win on CUDA anyway.
            return MambaConfig(**common, state_size=self.d_state_mamba1, use_mambapy=True)
        raise ConfigError(f"model.arch: expected one of {', '.join(ARCHS)}, got {arch!r}")


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


for _p in (
    # tests: ~0.1M parameters, trains in seconds
    Preset(
        "tiny",
        d_model=64,
        n_layers=2,
        d_state_mamba2=16,
        head_dim=64,
        chunk_size=64,
        summary="tests, <1M params",
    ),
    # the CPU demo: trains visibly in a minute on 2 cores. Measured on 2 cores (batch 8 x 256):
    # 2 heads, n=32 and 64-long SSD chunks train ~1.45x faster than n=64 with 256-long chunks.
    Preset(
        "small", d_model=128, n_layers=4, d_state_mamba2=32, head_dim=128, chunk_size=64, summary="CPU demo"
    ),
    Preset("130m", d_model=768, n_layers=24, summary="mamba-130m shape"),
    Preset("370m", d_model=1024, n_layers=48, summary="mamba-370m shape"),
    Preset("790m", d_model=1536, n_layers=48, summary="mamba-790m shape"),
    Preset("1.4b", d_model=2048, n_layers=48, summary="mamba-1.4b shape"),
    Preset("2.8b", d_model=2560, n_layers=64, summary="mamba-2.8b shape"),
):
    register_preset(_p)


def get_preset(name: str) -> Preset:
    """Look a preset up by name, with a one-line error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"model.preset: expected one of {', '.join(PRESETS)}, got {name!r}") from None
