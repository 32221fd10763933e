"""Bits per byte of each document, scored exactly as lm-eval's ``loglikelihood_rolling`` does.

A document of ``n`` UTF-8 bytes is the token list ``t = bytes + [EOS]`` (T = n + 1 ids; the
byte tokenizer appends EOS, as lm-eval's ``hf`` model does by default). It is cut into rolling
windows of at most ``max_length`` predictions (lm-eval's ``get_rolling_token_windows`` with
``context_len=1`` followed by ``make_disjoint_window``):

- the first window feeds ``[EOS] + t[:L-1]`` and predicts ``t[:L]``;
- each later window predicts the next ``L`` tokens (fewer in the last one) from a fresh state,
  fed the ``L`` tokens that end just before its last prediction.

So Mamba's recurrent state restarts at every window: a score is only comparable with scores
taken at the same ``max_length``, which every result records. The score of a document is
``Σ -log2 p(t_j | ...)`` over all T predictions, divided by its ``n`` bytes (not by T).

Windows are batched by length and right-padded; padded positions are masked out of the sum
(the model is causal, so padding after a position cannot change its logits). No padding
reaches the loss. Shape letters: b windows in a batch, l window length, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from fedem.model.tokenizer import EOS_ID, PAD_ID, encode

DEFAULT_MAX_LENGTH = 2048  # lm-eval's default for models without max_position_embeddings (Mamba)
LN2 = math.log(2)


@dataclasses.dataclass(frozen=True)
class Window:
    """One forward pass: ``inputs`` (l ids) and the ``targets`` they predict; the last
    ``scored`` positions count (the rest is context)."""

    doc: int
    inputs: list[int]
    targets: list[int]
    scored: int


@dataclasses.dataclass(frozen=True)
class DocScores:
    """Per-document scores of one model on one list of documents.

    ``bits[i]`` is the total code length of document ``i`` in bits, ``bytes[i]`` its UTF-8
    length. Per-document bits/byte is ``bits / bytes``; a set's bits/byte is ``Σ bits / Σ bytes``
    (lm-eval's ``bits_per_byte`` aggregate: longer documents weigh more).
    """

    bits: np.ndarray  # (n,) float64
    bytes: np.ndarray  # (n,) int64
    max_length: int

    @property
    def bits_per_byte(self) -> float:
        return float(self.bits.sum() / self.bytes.sum())

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.bits).all())


def rolling_windows(doc_index: int, text: str, max_length: int) -> list[Window]:
    """The windows of one document, identical to lm-eval's rolling loglikelihood requests."""
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    tokens = [*encode(text), EOS_ID]  # (T,)
    windows, first = [], min(max_length, len(tokens))
    windows.append(Window(doc_index, [EOS_ID, *tokens[: first - 1]], tokens[:first], first))
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_length)
        end = predicted + n
        start = end - max_length - 1  # >= 0: at least one full window was predicted before
        windows.append(Window(doc_index, tokens[start : end - 1], tokens[start + 1 : end], n))
        predicted = end
    return windows


def _batches(windows: list[Window], tokens_per_batch: int) -> list[list[Window]]:
    # Longest first, so each batch pads to a length close to all of its members.
    ordered = sorted(windows, key=lambda w: -len(w.inputs))
    out, cur = [], []
    for w in ordered:
        if cur and len(cur[0].inputs) * (len(cur) + 1) > tokens_per_batch:
            out.append(cur)
            cur = []
        cur.append(w)
    if cur:
        out.append(cur)
    return out


@torch.no_grad()
def score_documents(
    model,
    docs: Sequence[str],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    tokens_per_batch: int = 16384,
) -> DocScores:
    """Code length in bits of every document in ``docs`` under ``model`` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    nats = np.zeros(len(docs), dtype=np.float64)
    windows = [w for i, d in enumerate(docs) for w in rolling_windows(i, d, max_length)]
    try:
        for batch in _batches(windows, tokens_per_batch):
            width = len(batch[0].inputs)
            x = torch.full((len(batch), width), PAD_ID, dtype=torch.long)  # (b, l)
            y = torch.full((len(batch), width), PAD_ID, dtype=torch.long)  # (b, l)
            mask = torch.zeros((len(batch), width), dtype=torch.bool)  # (b, l): scored positions
            for j, w in enumerate(batch):
                m = len(w.inputs)
                x[j, :m] = torch.tensor(w.inputs)
                y[j, :m] = torch.tensor(w.targets)
                mask[j, m - w.scored : m] = True
            logits = model(input_ids=x.to(device)).logits.float()  # (b, l, V)
            logp = torch.log_softmax(logits, dim=-1).gather(-1, y.to(device)[..., None])[..., 0]  # (b, l)
            # where, not a product: an infinite log-prob at a padded position must not leak in, while
            # one at a scored position does (non-finite outputs must not pass silently).
            logp = torch.where(mask.to(device), logp, torch.zeros((), device=device))
            per_window = -logp.sum(dim=1).double().cpu().numpy()  # (b,)
            for w, v in zip(batch, per_window, strict=True):
                nats[w.doc] += v
    finally:
        model.train(was_training)
    nbytes = np.array([len(d.encode("utf-8")) for d in docs], dtype=np.int64)
    return DocScores(bits=nats / LN2, bytes=nbytes, max_length=max_length)
