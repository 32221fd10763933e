"""Text generation from a loaded Seshu (see :func:`fedem.adapter.load.load_for_inference`)."""

from __future__ import annotations

import torch

from fedem.model.tokenizer import EOS_ID, PAD_ID, decode, encode


@torch.no_grad()
def generate_text(
    model, prompt: str, *, max_new_tokens: int = 120, temperature: float = 0.8, top_k: int = 50, seed: int = 0
) -> str:
    """Continue ``prompt`` with the model; greedy when ``temperature`` is 0. Returns only the new text."""
    ids = torch.tensor([encode(prompt) or [EOS_ID]])  # (1, l)
    model.eval()
    sample = temperature > 0
    kwargs = dict(do_sample=True, temperature=temperature, top_k=top_k) if sample else dict(do_sample=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            eos_token_id=EOS_ID,
            pad_token_id=PAD_ID,
            **kwargs,
        )
    return decode(out[0, ids.shape[1] :].tolist())
