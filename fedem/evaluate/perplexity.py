"""Bits per byte on packed held-out blocks.

Seshu's vocabulary is bytes (plus EOS), so bits-per-byte is the mean next-token
cross-entropy in bits over every predicted position: ``Σ nll / (N · ln 2)``. Blocks are packed
without padding, so every position counts; the first token of a block has no context and is
not predicted (N = m·(l-1)). Lower is better; uniform guessing over 259 ids is ~8.02.
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


def score_model_dir(
    model_dir, data_path=None, *, adapter=None, block_size: int = 256, max_blocks: int = 256
) -> dict:
    """Bits/byte of a saved model (plus optional adapter) on a file, or the embedded held-out split."""
    from fedem.adapter.load import load_for_inference
    from fedem.data import DataSpec, SourceSpec, build_dataset, pack
    from fedem.data.sources import load_documents
    from fedem.errors import DataError

    model = load_for_inference(model_dir, adapter)
    if data_path:
        blocks = torch.from_numpy(
            pack(load_documents(SourceSpec(path=str(data_path))), block_size).astype("int64")
        )
        label = str(data_path)
        if len(blocks) == 0:
            raise DataError(f"{data_path}: shorter than one block of {block_size} bytes; lower --block-size")
    else:
        blocks = build_dataset(DataSpec(block_size=block_size, heldout_max_blocks=max_blocks)).heldout
        label = "embedded corpus, held-out split"
    blocks = blocks[:max_blocks]
    total, count = nll_sum(model, blocks)
    return {"bits_per_byte": total / (count * math.log(2)), "positions": count, "data": label}
