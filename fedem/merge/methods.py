"""The elementwise half of a merge: sparsify each ΔWₖ, elect signs, normalize, add to W₀.

Shape letters: o, i the weight's out and in features; K adapters. Every function works on one
tensor at a time, so a merge never holds more than a few (o, i) fp32 buffers, whatever K is:
TIES reads each sparsified delta twice (once to elect the signs, once to keep the agreeing
entries) and recomputes it rather than stacking K dense deltas, which is exact because the
sparsifiers are deterministic (DARE's masks come from a seed, see :func:`dare_keep`).

The definitions (docs/merging.md has them with the papers, and how PEFT and mergekit differ):

- magnitude top-k (TIES "trim"): keep the k = max(1, ⌊p·n⌋) entries of largest |ΔW|, where
  entries tied with the k-th largest are all kept (so the result does not depend on a sort's
  tie order);
- DARE: keep each entry with probability p, then rescale by 1/p (``inverse``), by the L1 ratio
  ‖ΔW‖₁/‖kept‖₁ (``l1``, mergekit) or not at all;
- TIES sign election: γ = +1 where Σₖ wₖτₖ ≥ 0, else −1 (zeros elect +, as PEFT and mergekit);
  adapter k agrees at an entry when τₖ ≠ 0 and sign(τₖ) = γ;
- normalize: divide by Σₖ wₖ, or for TIES by Σ of the agreeing wₖ (the "disjoint mean"; where
  nobody agrees the delta is 0).
"""

from __future__ import annotations

import contextlib
import hashlib
import math

import numpy as np
import torch

from fedem.merge.delta import LoraTerm, lora_delta, weighted_low_rank_sum
from fedem.merge.spec import MergeSpec

_RNG_CHUNK = 1 << 20  # mask draws per numpy call: bounds the uint64 scratch to 8 MiB


@contextlib.contextmanager
def one_thread():
    """Run torch's CPU ops on one thread for the merge, then restore the caller's setting.

    Two reasons. Bytes: a GEMM's summation order may depend on the thread count, so fixing it
    makes the same inputs give the same bytes on any host. Speed: the work per tensor is a
    skinny GEMM (inner size R) and elementwise passes, memory-bound; on the 2 shared cores here
    a 181 MB merge took 1.4-2.1 s on one thread and 6.6-10.7 s on two, OpenMP's threads waiting
    on each other whenever another process holds a core.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def dare_entropy(seed: int, adapter: str, tensor: str) -> list[int]:
    """The SeedSequence entropy of one adapter's mask on one tensor.

    It depends on the seed, the adapter's weights sha256 and the tensor name, never on the
    adapter's position or on which shard the tensor sits in, so reordering adapters (with their
    weights) or resharding the base gives the same bytes.
    """
    digest = hashlib.sha256(f"{adapter}\0{tensor}".encode()).digest()
    return [seed, int.from_bytes(digest, "little")]


def dare_keep(shape: tuple[int, ...], p: float, seed: int, adapter: str, tensor: str) -> torch.Tensor:
    """DARE's keep mask: entry j is kept when uⱼ < p, uⱼ the j-th draw in row-major order.

    uⱼ = (xⱼ >> 11)·2⁻⁵³ with xⱼ the j-th 64-bit output of numpy's PCG64 seeded by
    ``SeedSequence(dare_entropy(...))``: exactly ``numpy.random.Generator(PCG64(ss)).random(n)``,
    a documented, tool-independent recipe (torch's generator is not specified across versions).
    The comparison is done on integers: (xⱼ >> 11) < ⌈p·2⁵³⌉ ⇔ uⱼ < p.
    """
    n = math.prod(shape)
    bits = np.random.PCG64(np.random.SeedSequence(dare_entropy(seed, adapter, tensor)))
    bound = np.uint64(math.ceil(p * 2.0**53))
    keep = np.empty(n, dtype=np.bool_)
    for start in range(0, n, _RNG_CHUNK):
        stop = min(n, start + _RNG_CHUNK)
        np.less(bits.random_raw(stop - start) >> np.uint64(11), bound, out=keep[start:stop])
    return torch.from_numpy(keep).reshape(shape)


def trim_magnitude(delta: torch.Tensor, p: float) -> torch.Tensor:
    """TIES' trim, in place: zero all but the top-k |entries| (ties with the k-th kept)."""
    if p >= 1:
        return delta
    n = delta.numel()
    k = max(1, int(p * n))
    mag = delta.abs()  # (o, i)
    # np.partition is a selection, ~6x faster than torch.kthvalue on a 2.4M-entry tensor.
    flat = mag.reshape(-1).cpu().numpy()
    threshold = float(np.partition(flat, n - k)[n - k])  # the k-th largest |ΔW|
    return delta.masked_fill_(mag < threshold, 0.0)


def sparsified(term: LoraTerm, spec: MergeSpec, tensor: str) -> torch.Tensor:
    """τₖ: the adapter's dense ΔW (fp32, (o, i)) after the method's sparsifier and rescale."""
    delta = lora_delta(term)  # (o, i)
    how, p = spec.definition.sparsify, spec.keep
    if how == "magnitude":
        before = delta.abs().sum(dtype=torch.float64) if spec.rescaling == "l1" else None
        trim_magnitude(delta, p)
    elif how == "bernoulli" and p < 1:
        before = delta.abs().sum(dtype=torch.float64) if spec.rescaling == "l1" else None
        keep = dare_keep(term.shape, p, spec.seed, term.adapter, tensor).to(delta.device)
        delta.mul_(keep)
        if spec.rescaling == "inverse":
            delta.div_(p)
    else:
        return delta
    if before is not None:
        after = delta.abs().sum(dtype=torch.float64)
        # mergekit's guard: no rescale when either norm is (numerically) zero.
        if before >= 1e-7 and after >= 1e-7:
            delta.mul_(float(before / after))
    return delta


def combined_delta(terms: list[LoraTerm], spec: MergeSpec, tensor: str) -> torch.Tensor:
    """δ for one tensor (fp32, (o, i)), before λ: the method applied to the adapters' deltas."""
    m = spec.definition
    total_w = sum(t.weight for t in terms)
    if m.low_rank:
        return weighted_low_rank_sum(terms, total_w if spec.normalized else 1.0)
    acc = torch.zeros(terms[0].shape, dtype=torch.float32, device=terms[0].B.device)  # (o, i)
    for t in terms:
        acc.add_(sparsified(t, spec, tensor), alpha=t.weight)  # Σ wₖτₖ
    if not m.ties:
        return acc.div_(total_w) if spec.normalized else acc
    # TIES: the sign of that weighted sum is elected; then keep only the agreeing entries.
    positive = acc >= 0  # γ = +1 (bool (o, i))
    acc.zero_()
    agreeing_w = torch.zeros_like(acc) if spec.normalized else None
    for t in terms:
        tau = sparsified(t, spec, tensor)
        agree = torch.where(positive, tau > 0, tau < 0)  # τₖ ≠ 0 and sign(τₖ) = γ
        acc.add_(tau.mul_(agree), alpha=t.weight)
        if agreeing_w is not None:
            agreeing_w.add_(agree, alpha=t.weight)
    if agreeing_w is None:
        return acc
    # Where nobody agrees, acc is 0 already; dividing by 1 there keeps it 0.
    return acc.div_(agreeing_w.masked_fill_(agreeing_w == 0, 1.0))


def merged_weight(w0: torch.Tensor, terms: list[LoraTerm], spec: MergeSpec, tensor: str) -> torch.Tensor:
    """W₀ + λ·δ: accumulated in fp32, rounded once to W₀'s dtype. ``w0`` is not modified."""
    delta = combined_delta(terms, spec, tensor)  # (o, i) fp32
    if spec.lambda_ != 1:
        delta.mul_(spec.lambda_)
    return delta.add_(w0.float()).to(w0.dtype)
