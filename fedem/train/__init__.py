"""One training engine for pretraining, continuous pretraining and LoRA relay finetuning."""

from fedem.train.config import FinetuneConfig, LoraSpec, ModelSpec, PretrainConfig, TrainSpec
from fedem.train.engine import TrainResult, run_training
from fedem.train.jobs import finetune, pretrain, resolve_adapter_dir, resolve_model_dir

__all__ = [
    "FinetuneConfig",
    "LoraSpec",
    "ModelSpec",
    "PretrainConfig",
    "TrainResult",
    "TrainSpec",
    "finetune",
    "pretrain",
    "resolve_adapter_dir",
    "resolve_model_dir",
    "run_training",
]
