"""Job configs for the training engine: pretraining (and CPT) and LoRA finetuning.

YAML under ``pipelines/`` is only the disk form of these frozen dataclasses; see
:mod:`fedem.config` for loading, overrides and round-tripping.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from fedem.adapter.lora import LoraSpec
from fedem.config import Invalid
from fedem.data.spec import DataSpec
from fedem.model.presets import PRESETS
from fedem.names import ARCHS, MAX_PERSON, adapter_name_problem, free_text_problem

MAX_STEPS = 100_000_000


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which Seshu to train: a preset built from scratch, or ``init`` (a model dir) to continue."""

    preset: str = "small"
    arch: Literal["mamba2", "mamba"] = "mamba2"
    init: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise Invalid("preset", f"one of {', '.join(PRESETS)} (got {self.preset!r})")
        if self.arch not in ARCHS:
            raise Invalid("arch", f"one of {', '.join(ARCHS)}")


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Optimisation and bookkeeping. The schedule is linear warm-up then cosine to ``min_lr_ratio·lr``."""

    steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    save_every: int = 50
    eval_every: int | None = None  # held-out bits/byte every N steps (None: only before and after)
    eval_batch_size: int = 16
    keep_checkpoints: bool = False
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    threads: int | None = None

    def __post_init__(self):
        # Upper bounds too: a config is untrusted input, and 10**18 steps would only fail (or
        # allocate a schedule of that size) after the data was built.
        for name, most in (
            ("steps", MAX_STEPS),
            ("batch_size", 1 << 16),
            ("grad_accum", 1 << 16),
            ("log_every", MAX_STEPS),
            ("save_every", MAX_STEPS),
            ("eval_batch_size", 1 << 16),
        ):
            if not 1 <= getattr(self, name) <= most:
                raise Invalid(name, f"an integer from 1 to {most:,}")
        if not 0 < self.lr <= 1000:
            raise Invalid("lr", "a number in (0, 1000]")
        if not 0 <= self.min_lr_ratio <= 1:
            raise Invalid("min_lr_ratio", "a number between 0 and 1")
        if not 0 <= self.warmup_steps <= self.steps:
            raise Invalid("warmup_steps", f"an integer between 0 and steps ({self.steps})")
        if self.weight_decay < 0:
            raise Invalid("weight_decay", "a number >= 0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise Invalid(name, "a number in [0, 1)")
        if not self.grad_clip >= 0:
            raise Invalid("grad_clip", "a number >= 0 (0 disables clipping)")
        if self.eval_every is not None and not 1 <= self.eval_every <= MAX_STEPS:
            raise Invalid("eval_every", f"an integer from 1 to {MAX_STEPS:,}, or null")
        if self.threads is not None and not 1 <= self.threads <= 4096:
            raise Invalid("threads", "an integer from 1 to 4096, or null")
        if not 0 <= self.seed < 2**32:
            raise Invalid("seed", "an integer from 0 to 2**32 - 1")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """``fedem pretrain``: train the base model from scratch, or continue it (CPT)."""

    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)
    output: str = "runs/pretrain"


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """``fedem finetune``: train a LoRA adapter on ``base``, fresh or continuing ``adapter``."""

    base: str = "runs/pretrain"
    adapter: str | None = None
    name: str = "adapter"
    contributor: str | None = None
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    train: TrainSpec = dataclasses.field(
        default_factory=lambda: TrainSpec(steps=60, lr=2e-3, warmup_steps=5, weight_decay=0.0, save_every=20)
    )
    lora: LoraSpec = dataclasses.field(default_factory=LoraSpec)
    output: str = "runs/adapter"

    def __post_init__(self):
        # The same rules push and the registry apply, checked before any training is spent.
        if (problem := adapter_name_problem(self.name)) is not None:
            raise Invalid("name", f"an adapter name ({problem})")
        if self.contributor is not None and (
            problem := free_text_problem(self.contributor, max_len=MAX_PERSON)
        ):
            raise Invalid("contributor", f"a short one-line name ({problem})")
