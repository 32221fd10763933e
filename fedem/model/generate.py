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
    from fedem.adapter.base import BaseInfo
    from fedem.adapter.validate import validate_adapter
    from fedem.io import sha256_file
    from fedem.model.seshu import load_model
    from fedem.train.jobs import resolve_adapter_dir, resolve_model_dir
    from fedem.train.lora import load_trainable

    base_dir = resolve_model_dir(model_dir)
    model = load_model(base_dir)
    if adapter:
        folder = resolve_adapter_dir(adapter)
        # Validate before loading: an adapter may come from anyone.
        validate_adapter(
            folder, BaseInfo.from_model(model, sha256=sha256_file(base_dir / "model.safetensors"))
        )
        model = load_trainable(model, folder, model.config.model_type)
    return model
