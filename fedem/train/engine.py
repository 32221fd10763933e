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
from fedem.errors import FedemError
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


class NonFiniteError(FedemError):
    """Training produced a non-finite loss or weights; nothing was saved."""


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


@dataclasses.dataclass
class Run:
    """The state of one run, shared by its named steps (prepare, step, log, evaluate, checkpoint).

    CPT and the simulator drive a run through these steps; :func:`run_training` is the plain loop.
    """

    spec: TrainSpec
    data: PackedData
    acc: Accelerator
    model: torch.nn.Module  # as prepared by accelerate (DDP-wrapped under a launcher)
    raw: torch.nn.Module  # the unwrapped model: evaluation and checkpoints
    opt: torch.optim.Optimizer
    workdir: Path
    config_hash: str
    order: torch.Tensor  # (steps·ga·b·world, 2): the batch schedule, a pure function of the seed
    start: int
    bpb_before: float
    trainable: int
    # The first step whose loss was not finite, kept on the device (-1: none): no sync per step.
    first_bad: torch.Tensor = dataclasses.field(default_factory=lambda: torch.tensor(-1))

    @property
    def tokens_per_step(self) -> int:
        s = self.spec
        return s.batch_size * s.grad_accum * self.acc.num_processes * self.data.block_size

    @property
    def log_path(self) -> Path:
        return self.workdir / "log.jsonl"

    def append_log(self, record: dict) -> None:
        if self.acc.is_main_process:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")


def prepare_run(
    model: torch.nn.Module,
    data: PackedData,
    spec: TrainSpec,
    workdir: Path,
    config_hash: str,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    accelerator: Accelerator | None = None,
) -> Run:
    """Schedule: set up the optimizer, resume from the last checkpoint, score the start."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    distributed_state()
    acc = accelerator or Accelerator(mixed_precision=spec.mixed_precision, cpu=not torch.cuda.is_available())
    workdir = Path(workdir)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise RuntimeError("refusing to train a model with 0 trainable parameters")
    torch.manual_seed(spec.seed)
    opt = _optimizer(model, spec)
    start, extra = 0, {}
    if resume and (ckpts := list_checkpoints(workdir / "checkpoints")):
        start, extra = load_checkpoint(ckpts[-1], model, opt, config_hash, scaler=acc.scaler)
        log(f"resuming from {ckpts[-1]} (step {start})")
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    bpb_before = extra.get("bpb_before")
    if bpb_before is None:
        bpb_before = bits_per_byte(raw, data.heldout, spec.eval_batch_size)
        log(f"held-out bits/byte before training: {bpb_before:.4f}")
    order = data.order(spec.steps * spec.grad_accum * spec.batch_size * acc.num_processes, spec.seed)
    return Run(spec, data, acc, model, raw, opt, workdir, config_hash, order, start, bpb_before, trainable)


def train_step(run: Run, step: int) -> torch.Tensor:
    """One optimizer step (all micro-batches); returns Σ loss/ga on the device (no host sync)."""
    spec, acc, model = run.spec, run.acc, run.model
    b, ga, world, rank = spec.batch_size, spec.grad_accum, acc.num_processes, acc.process_index
    for group in run.opt.param_groups:
        group["lr"] = lr_at(step, spec)
    total = torch.zeros((), device=acc.device)
    for micro in range(ga):
        g = step * ga + micro
        rows = run.order[(g * world + rank) * b : (g * world + rank + 1) * b]
        x = run.data.gather(rows).to(acc.device)  # (b, l)
        ctx = acc.no_sync(model) if micro < ga - 1 else _null()
        with ctx, acc.autocast():
            # Packed blocks have no padding: every label is a real next byte or EOS.
            loss = model(input_ids=x, labels=x).loss / ga
        acc.backward(loss)
        total += loss.detach().float()
    if spec.grad_clip:
        acc.clip_grad_norm_(model.parameters(), spec.grad_clip)
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    bad = ~torch.isfinite(total) & (run.first_bad.to(total.device) < 0)
    run.first_bad = torch.where(
        bad, torch.tensor(step + 1, device=total.device), run.first_bad.to(total.device)
    )
    return total


def check_finite(run: Run, upto: int) -> None:
    """Refuse to go on (or save anything) after a non-finite loss; the error names the step."""
    first_bad = int(run.first_bad.item())
    if first_bad >= 0:
        raise NonFiniteError(
            f"training diverged: the loss was not finite at step {first_bad} of {run.spec.steps} "
            f"(checked at step {upto}); nothing was saved. Lower train.lr, or check the data and the "
            "adapter's scale (lora alpha/r)"
        )


class LossLog:
    """Log step: the mean loss since the last log, tok/s, lr, to ``log.jsonl``, the bar and the log."""

    def __init__(self, run: Run, progress: bool, log: Callable[[str], None]):
        self.run, self.log = run, log
        self.window = torch.zeros((), device=run.acc.device)
        self.last_loss = float("nan")
        # A live bar on a terminal; in logs (CI, nohup, pipes) a plain line every log_every steps.
        self.interactive = progress and run.acc.is_main_process and sys.stderr.isatty()
        self.plain = progress and not self.interactive
        self.bar = tqdm(
            total=run.spec.steps,
            initial=run.start,
            desc="train",
            unit="step",
            disable=not self.interactive,
            dynamic_ncols=True,
        )
        self.t_log = time.perf_counter()

    def add(self, run: Run, step: int, loss: torch.Tensor) -> None:
        spec, done = run.spec, step + 1
        self.window += loss  # summed on the device: no host sync per step
        self.bar.update(1)
        if done % spec.log_every and done != spec.steps:
            return
        check_finite(run, done)
        # window holds Σ loss/ga over the steps since the last log: its mean per step.
        n_steps = done - max(run.start, (done - 1) // spec.log_every * spec.log_every)
        # Every rank trained on its own shard: report the mean over all of them.
        self.last_loss = run.acc.reduce(self.window, reduction="mean").item() / max(1, n_steps)
        self.window.zero_()
        now = time.perf_counter()
        tok_s = n_steps * run.tokens_per_step / max(now - self.t_log, 1e-9)
        self.t_log = now
        lr = lr_at(step, spec)
        self.bar.set_postfix(loss=f"{self.last_loss:.3f}", lr=f"{lr:.2e}")
        run.append_log({"step": done, "loss": round(self.last_loss, 6), "lr": lr, "tok_s": round(tok_s)})
        if self.plain and run.acc.is_main_process:
            self.log(
                f"step {done}/{spec.steps} · loss {self.last_loss:.4f} · lr {lr:.2e} · {tok_s:,.0f} tok/s"
            )

    def close(self) -> None:
        self.bar.close()


def evaluate_step(run: Run, done: int, log: Callable[[str], None]) -> None:
    """Evaluate step: held-out bits/byte every ``eval_every`` steps (eval mode, no RNG drawn)."""
    spec = run.spec
    if spec.eval_every and done % spec.eval_every == 0 and done < spec.steps:
        bpb = bits_per_byte(run.raw, run.data.heldout, spec.eval_batch_size)
        log(f"step {done}/{spec.steps} · held-out bits/byte {bpb:.4f}")
        run.append_log({"step": done, "heldout_bpb": round(bpb, 6)})


def checkpoint_step(run: Run, done: int) -> None:
    """Checkpoint step: every ``save_every`` steps, resumable state (never after a non-finite loss)."""
    spec = run.spec
    if done % spec.save_every == 0 and done < spec.steps:
        check_finite(run, done)
        if run.acc.is_main_process:
            save_checkpoint(
                run.workdir / "checkpoints",
                done,
                run.raw,
                run.opt,
                run.config_hash,
                extra={"bpb_before": run.bpb_before},
                scaler=run.acc.scaler,
            )


def finish_run(run: Run, seconds: float, last_loss: float) -> TrainResult:
    """Final evaluation and the run's result; refuses a run whose weights are not finite."""
    run.acc.wait_for_everyone()
    check_finite(run, run.spec.steps)
    for name, p in run.raw.named_parameters():
        if p.requires_grad and not torch.isfinite(p).all():
            raise NonFiniteError(
                f"training diverged: {name} is not finite after step {run.spec.steps}; nothing was saved"
            )
    bpb_after = bits_per_byte(run.raw, run.data.heldout, run.spec.eval_batch_size)
    ran = run.spec.steps - run.start
    return TrainResult(
        steps=run.spec.steps,
        tokens=run.spec.steps * run.tokens_per_step,
        seconds=round(seconds, 3),
        tokens_per_s=ran * run.tokens_per_step / seconds if seconds > 0 else 0.0,
        final_loss=last_loss,
        bpb_before=run.bpb_before,
        bpb_after=bpb_after,
        trainable_params=run.trainable,
        resumed_from_step=run.start or None,
    )


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
    order: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` (its trainable parameters) on ``data`` for ``spec.steps`` optimizer steps.

    ``order`` (steps·ga·b·world, 2) replaces the data's own batch schedule (CPT's cursor draws)."""
    run = prepare_run(
        model, data, spec, workdir, config_hash, resume=resume, log=log, accelerator=accelerator
    )
    if order is not None:
        run.order = order
    losses = LossLog(run, progress, log)
    run.model.train()
    t0 = time.perf_counter()
    try:
        for step in range(run.start, spec.steps):
            losses.add(run, step, train_step(run, step))
            evaluate_step(run, step + 1, log)
            checkpoint_step(run, step + 1)
    finally:
        losses.close()
    return finish_run(run, time.perf_counter() - t0, losses.last_loss)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
