"""One training engine for pretraining, continuous pretraining and LoRA relay finetuning."""

from fedem.adapter.lora import LoraSpec
from fedem.train.config import FinetuneConfig, ModelSpec, PretrainConfig, TrainSpec
from fedem.train.engine import TrainResult, run_training
from fedem.train.jobs import finetune, pretrain

__all__ = [
    "FinetuneConfig",
    "LoraSpec",
    "ModelSpec",
    "PretrainConfig",
    "TrainResult",
    "TrainSpec",
    "finetune",
    "pretrain",
    "run_training",
]
