"""Text generation from a Seshu directory (optionally with a LoRA adapter on top)."""

from __future__ import annotations

from pathlib import Path

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


def load_for_inference(model_dir: str | Path, adapter: str | Path | None = None):
    """Base model, with ``adapter`` applied (unmerged) when given."""
    from fedem.model.seshu import load_model
    from fedem.train.jobs import resolve_adapter_dir, resolve_model_dir
    from fedem.train.lora import load_trainable

    model = load_model(resolve_model_dir(model_dir))
    if adapter:
        model = load_trainable(model, resolve_adapter_dir(adapter), model.config.model_type)
    return model
