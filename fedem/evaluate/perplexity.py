"""Bits per byte on packed held-out blocks.

Seshu's vocabulary is bytes (plus EOS), so bits-per-byte is the mean next-token
cross-entropy in bits over every predicted position: ``Σ nll / (N · ln 2)``. Blocks are packed
without padding, so every position counts; the first token of a block has no context and is
not predicted (N = m·(l-1)). Lower is better; uniform guessing over 259 ids is ~8.02.

This is the training loop's quick held-out figure. Scores that are compared (the gate, the
evaluation report, lm-eval) are per document: see :mod:`fedem.evaluate.documents`. This module
imports torch only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def nll_sum(model, blocks: torch.Tensor, batch_size: int = 16) -> tuple[float, int]:
    """(total nats, predicted positions) of ``model`` on ``blocks`` (m, l)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for i in range(0, len(blocks), batch_size):
            x = blocks[i : i + batch_size].to(device)  # (b, l)
            logits = model(input_ids=x).logits.float()  # (b, l, V)
            nll = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"
            )
            total += nll.item()
            count += x[:, 1:].numel()
    finally:
        model.train(was_training)
    return total, count


def bits_per_byte(model, blocks: torch.Tensor, batch_size: int = 16) -> float:
    """Held-out bits per byte of ``model`` on packed ``blocks`` (m, l)."""
    total, count = nll_sum(model, blocks, batch_size)
    return total / (count * math.log(2))
