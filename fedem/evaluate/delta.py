"""A LoRA adapter as a weight delta held in memory, applied to a loaded base and taken off again.

For a wrapped ``nn.Linear`` of weight W (o, i), LoRA adds ``ΔW = s·B@A`` with A (r, i), B (o, r)
and ``s = alpha / r`` (PEFT's scaling, no rsLoRA: validation refuses it). Scoring base + one
adapter does not need PEFT: :func:`applied` adds ΔW to the base's weights in place (in fp32,
rounded once to the weights' dtype) and on exit restores a saved copy bit for bit, so one
loaded base serves any number of candidates. The forward then costs exactly a base forward.

An unmerged forward (``W x + s·B(A x)``, what PEFT computes) is available as forward hooks
(:func:`unmerged`), to check that the merged weights compute what the adapter means
(:func:`merge_gap`). They agree to float rounding for ``in_proj``; a target whose weight some
kernel reads directly (the ``dt_proj`` trap, BRIEF §3) would not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import safe_open

from fedem.errors import AdapterRejected

_KEY = re.compile(r"base_model\.model\.(.+)\.lora_([AB])\.weight")


@dataclasses.dataclass(frozen=True)
class LoraDelta:
    """ΔW per module, kept factored: module path -> (A (r, i), B (o, r)), fp32, times ``scale``."""

    scale: float
    factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(sorted(self.factors))


def read_delta(weights: str | Path, *, rank: int, alpha: float) -> LoraDelta:
    """The factors in a *validated* ``adapter_model.safetensors`` (keys and shapes were checked)."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            m = _KEY.fullmatch(key)
            if m is None:
                raise AdapterRejected(f"{Path(weights).name}: unexpected tensor {key!r}")
            pairs.setdefault(m.group(1), {})[m.group(2)] = f.get_tensor(key).float()
    factors = {}
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise AdapterRejected(f"{Path(weights).name}: {module} lacks its lora_A or lora_B")
        factors[module] = (ab["A"], ab["B"])
    return LoraDelta(scale=float(alpha) / rank, factors=factors)


def _linear(model: torch.nn.Module, path: str) -> torch.nn.Linear:
    try:
        mod = model.get_submodule(path)
    except AttributeError:
        raise AdapterRejected(f"adapter module {path!r} does not exist in this base") from None
    if not isinstance(mod, torch.nn.Linear):
        raise AdapterRejected(f"adapter module {path!r} is not a Linear layer in this base")
    return mod


@contextlib.contextmanager
def applied(model: torch.nn.Module, delta: LoraDelta) -> Iterator[torch.nn.Module]:
    """``model`` with ``W += s·B@A`` on every adapted module; the original weights come back on exit."""
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for path, (a, b) in delta.factors.items():
                w = _linear(model, path).weight  # (o, i)
                saved.append((w, w.detach().clone()))
                dense = delta.scale * (b.to(w.device) @ a.to(w.device))  # (o, r) @ (r, i) -> (o, i)
                w.copy_((w.float() + dense).to(w.dtype))
        yield model
    finally:
        with torch.no_grad():
            for w, original in saved:
                w.copy_(original)


@contextlib.contextmanager
def unmerged(model: torch.nn.Module, delta: LoraDelta) -> Iterator[torch.nn.Module]:
    """``model`` computing ``W x + s·B(A x)`` on adapted modules (PEFT's unmerged forward)."""
    handles = []

    def hook(a: torch.Tensor, b: torch.Tensor):
        def add(_mod, inputs, out):
            x = inputs[0]  # (b, l, i)
            low = x.float() @ a.t().to(x.device)  # (b, l, r)
            return out + (delta.scale * (low @ b.t().to(x.device))).to(out.dtype)  # (b, l, o)

        return add

    try:
        for path, (a, b) in delta.factors.items():
            handles.append(_linear(model, path).register_forward_hook(hook(a, b)))
        yield model
    finally:
        for h in handles:
            h.remove()


def merge_gap(model: torch.nn.Module, delta: LoraDelta, probe: torch.Tensor) -> float:
    """Relative max difference of logits on ``probe`` (b, l) between merged and unmerged forwards.

    Inf or NaN means the merged weights or outputs are not finite.
    """
    model.eval()
    with torch.no_grad():
        with unmerged(model, delta):
            ref = model(input_ids=probe).logits.float()  # (b, l, V)
        with applied(model, delta):
            for path in delta.factors:
                if not torch.isfinite(_linear(model, path).weight).all():
                    return float("inf")
            got = model(input_ids=probe).logits.float()  # (b, l, V)
    gap = (got - ref).abs().max() / ref.abs().max().clamp_min(1e-6)
    return float(gap) if torch.isfinite(gap) else float("inf")
