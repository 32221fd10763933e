"""A short, prepared check of the GPU path (run on a lent GPU machine, never in CI).

``python -m benchmarks.gpu_check OUT.json [--block-kernels]`` runs, on CUDA:

1. a bf16 mixed-precision pretrain of ``small`` Seshu (Mamba-2) through fedem's engine, and a
   LoRA relay hop on top of it: loss finite, held-out bits/byte falls, adapter weights change;
2. training tokens/s of the ``130m`` preset (batch 8 x 1024, bf16 autocast);
3. the logits of a fixed ``small`` model on fixed input, saved for comparison across runs.

``--block-kernels`` hides mamba_ssm / causal_conv1d before transformers is imported, forcing
the PyTorch path; comparing the two runs' logits checks the kernels against the reference.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

if "--block-kernels" in sys.argv:
    for name in ("mamba_ssm", "causal_conv1d", "selective_scan_cuda", "causal_conv1d_cuda"):
        sys.modules[name] = None  # import of a None entry raises ImportError


def main(out_path: str) -> None:
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from fedem.data import DataSpec
    from fedem.model import build_model
    from fedem.model.seshu import kernel_path
    from fedem.train import FinetuneConfig, ModelSpec, PretrainConfig, TrainSpec, finetune, pretrain

    report: dict = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "kernels": kernel_path(),
        "blocked": "--block-kernels" in sys.argv,
    }
    # 3. fixed logits (fp32 weights, fp32 compute) for the kernel-vs-reference comparison
    model = build_model("small", "mamba2", seed=0).cuda().eval()
    x = torch.randint(3, 259, (2, 512), generator=torch.Generator().manual_seed(0)).cuda()
    with torch.no_grad():
        report["logits_head"] = model(input_ids=x).logits[:, -4:, :16].float().cpu().tolist()
    del model

    with tempfile.TemporaryDirectory() as tmp:
        # 1. bf16 pretrain + relay hop through fedem's engine
        train = TrainSpec(
            steps=60,
            batch_size=16,
            warmup_steps=5,
            lr=4e-3,
            log_every=20,
            save_every=30,
            mixed_precision="bf16",
        )
        pt = PretrainConfig(model=ModelSpec(preset="small"), data=DataSpec(), train=train, output=f"{tmp}/pt")
        r = pretrain(pt, progress=False)
        report["pretrain_bf16"] = r.__dict__
        ft = FinetuneConfig(
            base=f"{tmp}/pt",
            data=DataSpec(),
            output=f"{tmp}/ft",
            train=TrainSpec(steps=20, batch_size=16, warmup_steps=2, mixed_precision="bf16", save_every=10),
        )
        r2 = finetune(ft, progress=False)
        report["finetune_bf16"] = r2.__dict__

    # 2. throughput of the 130m shape
    model = build_model("130m", "mamba2").cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    xb = torch.randint(3, 259, (8, 1024), device="cuda")
    for i in range(8):
        if i == 3:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=xb, labels=xb).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    report["130m_bf16_tok_per_s"] = 5 * xb.numel() / (time.perf_counter() - t0)
    report["130m_peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    Path(out_path).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "logits_head"}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
