"""Seshu: the byte-level Mamba LM fedem trains."""

from fedem.model.presets import PRESETS, Preset, get_preset, register_preset
from fedem.model.seshu import (
    build_model,
    check_model_dir,
    count_parameters,
    load_model,
    resolve_model_dir,
    save_model,
    weights_sha256,
)
from fedem.model.tokenizer import EOS_ID, PAD_ID, VOCAB_SIZE, byte_tokenizer, decode, encode
from fedem.names import ARCHS

__all__ = [
    "ARCHS",
    "EOS_ID",
    "PAD_ID",
    "PRESETS",
    "VOCAB_SIZE",
    "Preset",
    "build_model",
    "byte_tokenizer",
    "check_model_dir",
    "count_parameters",
    "decode",
    "encode",
    "get_preset",
    "load_model",
    "register_preset",
    "resolve_model_dir",
    "save_model",
    "weights_sha256",
]
