"""Cross-check against mergekit, an independent tool: ``linear`` equals its ``task_arithmetic``.

mergekit merges each LoRA into a dense bf16 copy first (``base+lora``), so its result carries one
bf16 rounding per adapter plus its final one; ours carries one. The two must agree within those
roundings, and a merge with other weights must not. mergekit is a dev-only dependency.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedem.merge import MergeSpec, merge_to_dir

from .conftest import lora_factors, read_tensors

pytest.importorskip("mergekit")

W = (1.0, 0.5, 0.75)


def _mergekit(base_dir, adapters, weights, out, cache):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    cfg = MergeConfiguration.model_validate(
        {
            "merge_method": "task_arithmetic",
            "base_model": str(base_dir),
            "models": [
                {"model": f"{base_dir}+{a}", "parameters": {"weight": w}}
                for a, w in zip(adapters, weights, strict=True)
            ],
            "dtype": "float32",  # its arithmetic in fp32, as ours; only the dense copies are bf16
            "out_dtype": "bfloat16",
        }
    )
    run_merge(cfg, str(out), MergeOptions(lora_merge_cache=str(cache), copy_tokenizer=False, quiet=True))
    return read_tensors(out)


def test_linear_equals_mergekit_task_arithmetic_within_bf16_rounding(base_bf16_mamba1, tmp_path):
    b = base_bf16_mamba1
    ads = [b.adapter(tmp_path / f"a{k}", k, std=0.05) for k in range(len(W))]
    theirs = _mergekit(b.dir, ads, W, tmp_path / "mk", tmp_path / "cache")
    merge_to_dir(b.dir, ads, MergeSpec("linear", weights=W), tmp_path / "ours")
    merge_to_dir(b.dir, ads, MergeSpec("linear", weights=W[::-1]), tmp_path / "other")
    ours, other, w0 = read_tensors(tmp_path / "ours"), read_tensors(tmp_path / "other"), read_tensors(b.dir)
    assert set(ours) == set(theirs)
    touched = set(lora_factors(ads[0]))
    for name in ours:
        if name not in touched:
            assert ours[name].equal(theirs[name]), name  # untouched: both copy the base
            continue
        mag = np.abs(w0[name].double().numpy()) + sum(
            np.abs(2.0 * w * (B @ A))
            for w, (A, B) in zip(W, (lora_factors(a)[name] for a in ads), strict=True)
        )
        ulp = 2.0 ** (np.floor(np.log2(mag)) - 7)  # bf16: 8 significant bits
        bound = (len(W) + 2) / 2 * ulp  # half an ulp per dense copy, per final rounding, and ours
        assert (np.abs(ours[name].double().numpy() - theirs[name].double().numpy()) <= bound).all(), name
        assert not (np.abs(other[name].double().numpy() - theirs[name].double().numpy()) <= bound).all()
