"""Training throughput and peak memory of one model path, measured in its own process.

``python -m benchmarks.train_bench KIND`` prints one JSON line: tokens/s over timed AdamW steps
(batch 8 × 256 bytes, the demo's shape) and the process's peak RSS. KINDs:

- ``seshu``: the default CPU path, ``small`` Seshu on Mamba-2 (chunked SSD in PyTorch);
- ``mamba1-mambapy``: ``small`` on Mamba-1 with mambapy's parallel scan (fedem's Mamba-1 CPU path);
- ``mamba1-stock``: ``small`` on Mamba-1 with transformers' stock sequential scan (never used by fedem);
- ``llama``: a transformers Llama of the same width, depth and parameter count (±5%): what this
  hardware gives a plain attention model.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch

B, L = 8, 256
STEPS = {"mamba1-stock": (1, 1)}  # (warm-up, timed) steps: the stock scan takes ~30 s a step here
DEFAULT_STEPS = (2, 8)


def build(kind: str):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from fedem.model import build_model, count_parameters, get_preset

    if kind == "seshu":
        return build_model("small", "mamba2")
    if kind == "mamba1-mambapy":
        return build_model("small", "mamba")
    if kind == "mamba1-stock":
        cfg = get_preset("small").hf_config("mamba")
        cfg.use_mambapy = False
        return AutoModelForCausalLM.from_config(cfg)
    if kind == "llama":
        target = count_parameters(build_model("small", "mamba2"))
        p = get_preset("small")
        best = None
        for inter in range(16, 1024, 8):  # pick the MLP width that matches Seshu's parameter count
            cfg = LlamaConfig(
                vocab_size=259,
                hidden_size=p.d_model,
                intermediate_size=inter,
                num_hidden_layers=p.n_layers,
                num_attention_heads=4,
                num_key_value_heads=4,
                max_position_embeddings=L,
                tie_word_embeddings=True,
            )
            n = sum(
                4 * p.d_model * p.d_model + 3 * p.d_model * inter + 2 * p.d_model for _ in range(p.n_layers)
            )
            if best is None or abs(n + 259 * p.d_model - target) < best[0]:
                best = (abs(n + 259 * p.d_model - target), cfg)
        model = AutoModelForCausalLM.from_config(best[1])
        assert abs(count_parameters(model) - target) / target < 0.05
        return model
    raise SystemExit(f"unknown kind {kind!r}")


def measure(kind: str) -> dict:
    torch.manual_seed(0)
    model = build(kind)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(3, 259, (B, L))  # (b, l)
    warm, timed = STEPS.get(kind, DEFAULT_STEPS)
    model.train()
    for i in range(warm + timed):
        if i == warm:
            t0 = time.perf_counter()
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    return {
        "kind": kind,
        "params": sum(p.numel() for p in model.parameters()),
        "tokens_per_s": timed * B * L / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    import transformers

    transformers.utils.logging.set_verbosity_error()
    print(json.dumps(measure(sys.argv[1])))
