"""The one training loop behind pretraining, CPT and LoRA relay finetuning.

Built on accelerate (device placement, mixed precision, DDP under ``accelerate launch``) with
a plain loop we can reason about:

- the batch for step ``s`` is a pure function of (config, s): resume needs no sampler state;
- the learning rate is a pure function of ``s``: no scheduler state either;
- checkpoints hold trainable weights, AdamW moments and the RNG state, in safetensors;
- a resumed run reproduces an uninterrupted one exactly on CPU (tested to 1e-6).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from fedem.data.dataset import PackedData
from fedem.evaluate.perplexity import bits_per_byte
from fedem.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from fedem.train.config import TrainSpec


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run did; printed as the final summary and stored in provenance."""

    steps: int
    tokens: int
    seconds: float
    tokens_per_s: float
    final_loss: float
    bpb_before: float
    bpb_after: float
    trainable_params: int
    resumed_from_step: int | None

    def summary(self) -> str:
        resumed = f" (resumed at step {self.resumed_from_step})" if self.resumed_from_step else ""
        return (
            f"steps {self.steps}{resumed} · tokens {self.tokens:,} · {self.tokens_per_s:,.0f} tok/s · "
            f"final loss {self.final_loss:.4f} · held-out bits/byte {self.bpb_before:.4f} -> {self.bpb_after:.4f} "
            f"({self.bpb_after - self.bpb_before:+.4f}) · trainable params {self.trainable_params:,}"
        )


def distributed_state():
    """accelerate's process state. Off-GPU it must be told ``cpu=True`` to join a multi-process
    CPU group (torchrun / ``accelerate launch --cpu``); otherwise each rank trains alone."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def lr_at(step: int, spec: TrainSpec) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_ratio·lr`` at the last step."""
    if spec.warmup_steps and step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    span = max(1, spec.steps - spec.warmup_steps)
    progress = min(1.0, (step - spec.warmup_steps) / span)
    floor = spec.lr * spec.min_lr_ratio
    return floor + (spec.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: torch.nn.Module, spec: TrainSpec) -> torch.optim.AdamW:
    # No decay on biases, norms and 1-d SSM parameters (A_log, D, dt_bias), as in Mamba's recipe.
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.beta1, spec.beta2), foreach=False)


def run_training(
    model: torch.nn.Module,
    data: PackedData,
    spec: TrainSpec,
    workdir: Path,
    config_hash: str,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    accelerator: Accelerator | None = None,
) -> TrainResult:
    """Train ``model`` (its trainable parameters) on ``data`` for ``spec.steps`` optimizer steps."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    distributed_state()
    acc = accelerator or Accelerator(mixed_precision=spec.mixed_precision, cpu=not torch.cuda.is_available())
    workdir = Path(workdir)
    ckpt_root = workdir / "checkpoints"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise RuntimeError("refusing to train a model with 0 trainable parameters")

    torch.manual_seed(spec.seed)
    opt = _optimizer(model, spec)
    start, extra = 0, {}
    if resume and (ckpts := list_checkpoints(ckpt_root)):
        start, extra = load_checkpoint(ckpts[-1], model, opt, config_hash, scaler=acc.scaler)
        log(f"resuming from {ckpts[-1]} (step {start})")
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    heldout = data.heldout

    bpb_before = extra.get("bpb_before")
    if bpb_before is None:
        bpb_before = bits_per_byte(raw, heldout, spec.eval_batch_size)
        log(f"held-out bits/byte before training: {bpb_before:.4f}")

    b, ga, world, rank = spec.batch_size, spec.grad_accum, acc.num_processes, acc.process_index
    order = data.order(spec.steps * ga * b * world, spec.seed)  # (steps·ga·b·world, 2)
    tokens_per_step = b * ga * world * data.block_size
    log_path = workdir / "log.jsonl"
    # A live bar on a terminal; in logs (CI, nohup, pipes) a plain line every log_every steps.
    interactive = progress and acc.is_main_process and sys.stderr.isatty()
    bar = tqdm(
        total=spec.steps,
        initial=start,
        desc="train",
        unit="step",
        disable=not interactive,
        dynamic_ncols=True,
    )
    model.train()
    t0 = t_log = time.perf_counter()
    window, last_loss = torch.zeros((), device=acc.device), float("nan")
    for step in range(start, spec.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, spec)
        for micro in range(ga):
            g = step * ga + micro
            rows = order[(g * world + rank) * b : (g * world + rank + 1) * b]
            x = data.gather(rows).to(acc.device)  # (b, l)
            ctx = acc.no_sync(model) if micro < ga - 1 else _null()
            with ctx, acc.autocast():
                # Packed blocks have no padding: every label is a real next byte or EOS.
                loss = model(input_ids=x, labels=x).loss / ga
            acc.backward(loss)
            window += loss.detach().float()  # summed on the device: no host sync per step
        if spec.grad_clip:
            acc.clip_grad_norm_(model.parameters(), spec.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        bar.update(1)
        done = step + 1
        if done % spec.log_every == 0 or done == spec.steps:
            # window holds Σ loss/ga over the steps since the last log: its mean per step.
            n_steps = done - max(start, (done - 1) // spec.log_every * spec.log_every)
            # Every rank trained on its own shard: report the mean over all of them.
            last_loss = acc.reduce(window, reduction="mean").item() / max(1, n_steps)
            window.zero_()
            now = time.perf_counter()
            tok_s = n_steps * tokens_per_step / max(now - t_log, 1e-9)
            t_log = now
            bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr_at(step, spec):.2e}")
            if acc.is_main_process:
                record = {
                    "step": done,
                    "loss": round(last_loss, 6),
                    "lr": lr_at(step, spec),
                    "tok_s": round(tok_s),
                }
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                if progress and not interactive:
                    log(
                        f"step {done}/{spec.steps} · loss {last_loss:.4f} · lr {lr_at(step, spec):.2e} · "
                        f"{tok_s:,.0f} tok/s"
                    )
        if spec.eval_every and done % spec.eval_every == 0 and done < spec.steps:
            bpb = bits_per_byte(raw, heldout, spec.eval_batch_size)  # eval mode, no RNG: order unchanged
            log(f"step {done}/{spec.steps} · held-out bits/byte {bpb:.4f}")
            if acc.is_main_process:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": done, "heldout_bpb": round(bpb, 6)}) + "\n")
        if done % spec.save_every == 0 and done < spec.steps and acc.is_main_process:
            save_checkpoint(
                ckpt_root, done, raw, opt, config_hash, extra={"bpb_before": bpb_before}, scaler=acc.scaler
            )
    bar.close()
    seconds = time.perf_counter() - t0
    acc.wait_for_everyone()
    bpb_after = bits_per_byte(raw, heldout, spec.eval_batch_size)
    ran = spec.steps - start
    return TrainResult(
        steps=spec.steps,
        tokens=spec.steps * tokens_per_step,
        seconds=round(seconds, 3),
        tokens_per_s=ran * tokens_per_step / seconds if seconds > 0 else 0.0,
        final_loss=last_loss,
        bpb_before=bpb_before,
        bpb_after=bpb_after,
        trainable_params=trainable,
        resumed_from_step=start or None,
    )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
