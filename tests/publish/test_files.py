"""What a checkpoint folder may hold, and caps sized for the largest preset."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModelForCausalLM

from fedem.adapter.policy import DEFAULT_POLICY
from fedem.errors import ModelError
from fedem.hub.base import DOWNLOAD_MAX_BYTES, DOWNLOAD_MAX_FILES
from fedem.model import PRESETS, get_preset
from fedem.publish.files import (
    CHECKPOINT_FILES,
    CHECKPOINT_MAX_BYTES,
    CHECKPOINT_MAX_FILES,
    MAX_SHARDS,
    checkpoint_files,
)


def _folder(path, names):
    path.mkdir()
    for n in names:
        (path / n).write_bytes(b"{}")
    return path


def test_every_file_of_a_checkpoint_is_allowed(tmp_path):
    folder = _folder(tmp_path / "ok", CHECKPOINT_FILES[1:])  # sharded: no single model.safetensors
    for n in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (folder / n).write_bytes(b"x")
    assert len(checkpoint_files(folder)) == len(CHECKPOINT_FILES) + 1
    single = _folder(tmp_path / "single", ["model.safetensors", "config.json", "fedem.json", "README.md"])
    assert [p.name for p in checkpoint_files(single)] == [
        "README.md",
        "config.json",
        "fedem.json",
        "model.safetensors",
    ]


@pytest.mark.parametrize(
    "names, needle",
    [
        (["model.safetensors", "pytorch_model.bin"], "'pytorch_model.bin' is not a checkpoint file"),
        (
            ["model.safetensors", "adapter_model.safetensors"],
            "'adapter_model.safetensors' is not a checkpoint",
        ),
        (["model.safetensors", "notes.md"], "'notes.md' is not a checkpoint file"),
        (["model-00001-of-00002.safetensors", "model.safetensors.index.json"], "one complete set"),
        (["model-00001-of-00001.safetensors"], "shards without model.safetensors.index.json"),
        (["model.safetensors", "model-00001-of-00001.safetensors", "model.safetensors.index.json"], "both"),
        (["model.safetensors.index.json"], "without model-NNNNN-of-NNNNN.safetensors shards"),
    ],
)
def test_anything_else_is_refused_in_one_line(tmp_path, names, needle):
    folder = _folder(tmp_path / "ckpt", names)
    with pytest.raises(ModelError) as err:
        checkpoint_files(folder)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_subfolders_symlinks_and_fifos_are_refused(tmp_path):
    for make in (
        lambda f: (f / "sub").mkdir(),
        lambda f: (f / "config.yaml").symlink_to(f / "config.json"),
        lambda f: os.mkfifo(f / "README.md"),
    ):
        folder = _folder(tmp_path / f"c{len(list(tmp_path.iterdir()))}", ["model.safetensors", "config.json"])
        make(folder)
        with pytest.raises(ModelError, match="is not a regular file"):
            checkpoint_files(folder)


def test_the_caps_fit_the_largest_preset_in_fp32_and_not_much_more():
    largest = 0
    for name in PRESETS:
        for arch in ("mamba2", "mamba"):
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(get_preset(name).hf_config(arch))
            largest = max(largest, 4 * sum(p.numel() for p in model.parameters()))
    assert largest > 10 * 10**9, "2.8b as Mamba-1 is ~10.6 GB in fp32"
    assert largest * 1.05 + (64 << 20) <= CHECKPOINT_MAX_BYTES <= largest * 1.5
    assert len(CHECKPOINT_FILES) + MAX_SHARDS == CHECKPOINT_MAX_FILES
    # The hub's defaults stay the adapters' (a test in tests/relay keeps those equal to the policy).
    assert (DEFAULT_POLICY.max_files, DEFAULT_POLICY.max_bytes) == (DOWNLOAD_MAX_FILES, DOWNLOAD_MAX_BYTES)
    assert CHECKPOINT_MAX_BYTES > 20 * DOWNLOAD_MAX_BYTES
