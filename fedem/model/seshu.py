"""Build, save and load Seshu: transformers' own Mamba / Mamba-2 with a byte vocabulary.

No Mamba code is copied here. transformers picks the execution path by itself: the
mamba-ssm / causal-conv1d CUDA kernels when they are importable on a GPU, otherwise the
PyTorch path (chunked SSD for Mamba-2, mambapy's parallel scan for Mamba-1).

A saved Seshu directory is a plain HF model directory (``config.json``,
``model.safetensors``, tokenizer files): ``AutoModelForCausalLM.from_pretrained(dir)`` and
lm-eval's ``--model hf`` load it without importing fedem.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from fedem.errors import ModelError
from fedem.io import atomic_dir, sha256_file
from fedem.model.presets import Arch, get_preset
from fedem.model.tokenizer import VOCAB_SIZE, byte_tokenizer
from fedem.names import MODEL_CONFIG, MODEL_WEIGHTS, PICKLE_SUFFIXES


def build_model(preset: str = "small", arch: Arch = "mamba2", seed: int = 0) -> PreTrainedModel:
    """A freshly initialised Seshu (deterministic for ``seed``)."""
    config = get_preset(preset).hf_config(arch)
    with _seeded(seed):
        model = AutoModelForCausalLM.from_config(config)
    return model


@contextlib.contextmanager
def _seeded(seed: int):
    # Fork the RNG so building a model never shifts the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder, or a pretrain run folder holding ``model/``."""
    path = Path(path)
    return path / "model" if (path / "model" / MODEL_CONFIG).is_file() else path


def weights_sha256(path: str | Path) -> str | None:
    """The identity of a model folder's weights: the sha256 of ``model.safetensors``; for a
    sharded folder, the sha256 over its shards' names and hashes in order. None when absent.

    Adapters record this as their base's identity, so it must not depend on how it is read.
    """
    path = resolve_model_dir(path)
    if (path / MODEL_WEIGHTS).is_file():
        return sha256_file(path / MODEL_WEIGHTS)
    shards = sorted(path.glob("model-*.safetensors"))
    if not shards:
        return None
    listing = "".join(f"{p.name} {sha256_file(p)}\n" for p in shards)
    return hashlib.sha256(listing.encode()).hexdigest()


def check_model_dir(path: str | Path) -> Path:
    """Refuse a model directory that is missing, unsafetensored, or carries pickles."""
    path = Path(path)
    if not (path / MODEL_CONFIG).is_file():
        raise ModelError(f"{path}: not a model directory (no config.json)")
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(f"{path}: refusing pickle files {pickles}; fedem loads safetensors only")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"{path}: no *.safetensors weights")
    return path


def load_model(path: str | Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Load a Seshu directory: safetensors only, never remote code."""
    path = check_model_dir(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=False, local_files_only=True
        )
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(
            f"{path}: cannot load model ({err.__class__.__name__}: {str(err).splitlines()[0]})"
        ) from None
    if model.config.vocab_size != VOCAB_SIZE:
        raise ModelError(
            f"{path}: vocab_size {model.config.vocab_size}, expected the {VOCAB_SIZE}-id byte vocabulary"
        )
    return model


def write_model(model: PreTrainedModel, folder: str | Path) -> Path:
    """Write model + tokenizer files into an existing folder (safetensors only)."""
    model.save_pretrained(folder, safe_serialization=True)
    byte_tokenizer().save_pretrained(folder)
    return Path(folder)


def save_model(model: PreTrainedModel, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write model + tokenizer as a standard HF directory, atomically."""
    with atomic_dir(path, overwrite=overwrite) as tmp:
        write_model(model, tmp)
    return Path(path)


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def quiet_transformers() -> None:
    """Silence per-call library chatter (load bars, kernel fall-back notices) for CLI runs.

    The kernel in use is reported once by fedem instead: see :func:`kernel_path`.
    """
    import warnings

    import transformers

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def kernel_path() -> str:
    """Which Mamba implementation transformers will run here."""
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm"):
        return "mamba-ssm CUDA kernels"
    return "PyTorch (Mamba-2 chunked SSD / Mamba-1 mambapy scan)"
