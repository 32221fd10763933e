"""Exactness: each method against a dense float64 reference written here from its paper, in numpy.

The references use none of fedem.merge's code. DARE's masks follow the recipe docs/merging.md
states (numpy's PCG64 ``Generator.random`` seeded from the seed, adapter hash and tensor name),
re-derived here, so the test also pins that recipe.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from fedem.merge import MergeSpec, merge_into_model, merge_to_dir
from fedem.model import load_model

from .conftest import lora_factors, read_tensors, tensor_bytes

W = (0.7, 1.3, 0.4)  # unequal on purpose: a method that ignores or misapplies weights fails


def _inputs(base, adapters):
    """(W₀ by name, per adapter: {name: ΔW = s·B·A in float64}, per adapter: weights sha256)."""
    w0 = {k: v.double().numpy() for k, v in read_tensors(base.dir).items()}
    deltas, shas = [], []
    for a in adapters:
        cfg = json.loads((a / "adapter_config.json").read_text())
        s = cfg["lora_alpha"] / cfg["r"]
        deltas.append({k: s * (B @ A) for k, (A, B) in lora_factors(a).items()})
        shas.append(json.loads((a / "fedem.json").read_text())["weights_sha256"])
    return w0, deltas, shas


def _trim(d: np.ndarray, density: float) -> np.ndarray:
    """TIES step 1 (Yadav et al. 2023, §3): keep the top-k% magnitudes, k = ⌊p·n⌋ (at least 1)."""
    k = max(1, int(density * d.size))
    kth = np.sort(np.abs(d), axis=None)[::-1][k - 1]
    return np.where(np.abs(d) >= kth, d, 0.0)


def _dare(d: np.ndarray, p: float, seed: int, sha: str, name: str, rescale: str = "inverse") -> np.ndarray:
    """DARE (Yu et al. 2024, eq. 2): drop each entry with probability 1−p, rescale survivors by 1/p.

    ``rescale="l1"`` is mergekit's variant instead: match the tensor's L1 norm.
    """
    entropy = [seed, int.from_bytes(hashlib.sha256(f"{sha}\0{name}".encode()).digest(), "little")]
    u = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy))).random(d.size)
    kept = np.where(u.reshape(d.shape) < p, d, 0.0)
    return kept / p if rescale == "inverse" else kept * (np.abs(d).sum() / np.abs(kept).sum())


def _ties_merge(taus: list[np.ndarray], w, mean: bool = True) -> np.ndarray:
    """TIES steps 2–3 with weights: γ = sgn(Σ wₖτₖ) (0 counts as +), then Σ_agree wₖτₖ / Σ_agree wₖ."""
    T = np.stack(taus)  # (K, o, i)
    wk = np.asarray(w, dtype=np.float64)[:, None, None]
    gamma = np.where((wk * T).sum(0) >= 0, 1.0, -1.0)
    agree = (np.sign(T) == gamma) & (T != 0)
    num, den = (wk * T * agree).sum(0), (wk * agree).sum(0)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0) if mean else num


def reference(
    method: str, w0, deltas, shas, *, w=W, density=1.0, lam=1.0, seed=0, rescale="inverse", normalize=None
) -> dict[str, np.ndarray]:
    out = dict(w0)
    ties = method in ("ties", "dare_ties")
    mean = ties if normalize is None else normalize
    for name in deltas[0]:
        ds = [d[name] for d in deltas]
        if method == "linear":
            delta = sum(wk * d for wk, d in zip(w, ds, strict=True))
        elif method == "ties":
            delta = _ties_merge([_trim(d, density) for d in ds], w, mean)
        elif method == "dare_linear":
            delta = sum(
                wk * _dare(d, density, seed, s, name, rescale) for wk, d, s in zip(w, ds, shas, strict=True)
            )
        elif method == "dare_ties":
            delta = _ties_merge(
                [_dare(d, density, seed, s, name, rescale) for d, s in zip(ds, shas, strict=True)], w, mean
            )
        if mean and not ties:
            delta = delta / sum(w)
        out[name] = w0[name] + lam * delta
    return out


def _assert_close(got: dict[str, torch.Tensor], ref: dict[str, np.ndarray], w0, rel: float) -> None:
    for name, r in ref.items():
        g = got[name].double().numpy()
        scale = np.abs(r).max()
        assert np.abs(g - r).max() <= rel * scale, name
        if not np.array_equal(r, w0[name]):  # the test must be able to fail: the change is far above rel
            assert np.abs(r - w0[name]).max() > 1000 * rel * scale, name


def test_linear_equals_dense_fp64_sum(base, adapters, tmp_path):
    w0, deltas, shas = _inputs(base, adapters)
    merge_to_dir(base.dir, adapters, MergeSpec("linear", weights=W, lambda_=0.8), tmp_path / "m")
    got = read_tensors(tmp_path / "m")
    ref = reference("linear", w0, deltas, shas, lam=0.8)
    _assert_close(got, ref, w0, rel=1e-6)


@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("ties", {"density": 0.3}),
        ("dare_linear", {"density": 0.6, "seed": 7}),
        ("dare_ties", {"density": 0.5, "seed": 3, "lambda_": 1.5}),
        ("ties", {"density": 0.5, "normalize": False}),  # the sum of agreeing deltas, not their mean
        (
            "dare_linear",
            {"density": 0.5, "rescale": "l1", "normalize": True},
        ),  # mergekit's rescale; an average
        ("dare_ties", {"density": 0.4, "rescale": "l1", "normalize": False}),  # mergekit's dare_ties defaults
    ],
)
def test_elementwise_methods_equal_paper_reference(base, adapters, tmp_path, method, kw):
    w0, deltas, shas = _inputs(base, adapters)
    merge_to_dir(base.dir, adapters, MergeSpec(method, weights=W, **kw), tmp_path / "m")
    got = read_tensors(tmp_path / "m")
    ref = reference(
        method,
        w0,
        deltas,
        shas,
        density=kw["density"],
        lam=kw.get("lambda_", 1.0),
        seed=kw.get("seed", 0),
        rescale=kw.get("rescale", "inverse"),
        normalize=kw.get("normalize"),
    )
    _assert_close(got, ref, w0, rel=2e-6)


def test_ties_is_not_peft_ties(base, adapters, tmp_path):
    """PEFT elects on unweighted deltas and divides by a count (BRIEF §11): with unequal weights it differs."""
    w0, deltas, shas = _inputs(base, adapters)
    merge_to_dir(base.dir, adapters, MergeSpec("ties", weights=W, density=0.3), tmp_path / "m")
    got = read_tensors(tmp_path / "m")
    name = "backbone.layers.1.mixer.in_proj.weight"
    T = np.stack([_trim(d[name], 0.3) for d in deltas])
    agree = np.sign(T) == np.where(T.sum(0) >= 0, 1, -1)
    peft = w0[name] + (np.asarray(W)[:, None, None] * T * agree).sum(0) / np.maximum(agree.sum(0), 1)
    assert np.abs(got[name].double().numpy() - peft).max() > 1e-3


def test_one_adapter_forward_equals_peft_unmerged(base, adapters, tmp_path):
    from peft import PeftModel

    ids = torch.randint(3, 259, (2, 24), generator=torch.Generator().manual_seed(0))
    merge_to_dir(base.dir, adapters[:1], MergeSpec(), tmp_path / "m")
    with torch.no_grad():
        plain = load_model(base.dir).eval()(ids).logits
        unmerged = PeftModel.from_pretrained(load_model(base.dir), adapters[0]).eval()(ids).logits
        merged = load_model(tmp_path / "m").eval()(ids).logits
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    assert (unmerged - plain).abs().max() > 1e-2  # the adapter changes the output well above the tolerance


@pytest.mark.parametrize("method", ["linear", "dare_ties"])
def test_in_memory_merge_has_the_streaming_bytes(base, adapters, tmp_path, method):
    spec = MergeSpec(method, weights=W, density=0.5 if method != "linear" else None, seed=11)
    merge_to_dir(base.dir, adapters, spec, tmp_path / "m")
    model = load_model(base.dir)
    merge_into_model(model, adapters, spec, base_sha256=base.sha256)
    streamed = read_tensors(tmp_path / "m")
    held = model.state_dict()
    assert {k: tensor_bytes(v) for k, v in streamed.items()} == {k: tensor_bytes(held[k]) for k in streamed}


def test_untouched_tensors_are_copied_byte_for_byte(base, adapters, tmp_path):
    merge_to_dir(base.dir, adapters, MergeSpec("ties"), tmp_path / "m")
    got, w0 = read_tensors(tmp_path / "m"), read_tensors(base.dir)
    changed = {k for k in got if tensor_bytes(got[k]) != tensor_bytes(w0[k])}
    assert changed == {k for k in w0 if k.endswith("in_proj.weight")}


def test_dare_same_seed_same_bytes_other_seed_other_bytes(base, adapters, tmp_path):
    spec = MergeSpec("dare_ties", weights=W, density=0.5, seed=5)
    for name in ("x", "y"):
        merge_to_dir(base.dir, adapters, spec, tmp_path / name)
    merge_to_dir(base.dir, adapters, MergeSpec("dare_ties", weights=W, density=0.5, seed=6), tmp_path / "z")
    x, y, z = ((tmp_path / n / "model.safetensors").read_bytes() for n in "xyz")
    assert x == y and x != z
    record = json.loads((tmp_path / "x" / "fedem.json").read_text())["merge"]
    assert (record["seed"], record["density"], record["rescale"], record["normalize"]) == (
        5,
        0.5,
        "inverse",
        True,
    )


def test_dare_masks_follow_adapters_not_positions(base, adapters, tmp_path):
    """Reordering the adapters with their weights gives the same bytes (masks derive from each hash)."""
    merge_to_dir(base.dir, adapters, MergeSpec("dare_linear", weights=W, density=0.5), tmp_path / "x")
    merge_to_dir(
        base.dir, adapters[::-1], MergeSpec("dare_linear", weights=W[::-1], density=0.5), tmp_path / "y"
    )
    x, y = read_tensors(tmp_path / "x"), read_tensors(tmp_path / "y")
    for k in x:  # float sums in another order may differ in the last bit, no more
        torch.testing.assert_close(x[k], y[k], rtol=1e-6, atol=1e-7)
