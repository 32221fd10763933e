"""Seshu: the byte-level Mamba LM fedem trains."""

from fedem.model.presets import ARCHS, PRESETS, Preset, get_preset, register_preset
from fedem.model.seshu import build_model, check_model_dir, count_parameters, load_model, save_model
from fedem.model.tokenizer import EOS_ID, PAD_ID, VOCAB_SIZE, byte_tokenizer, decode, encode

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
    "save_model",
]
