"""The two training jobs as typed functions: :func:`pretrain` (also CPT) and :func:`finetune`.

The CLI calls these and so do the tests. An output folder holds:

- ``config.yaml``: the resolved config; ``log.jsonl``: the loss log;
- ``checkpoints/``: resumable state while running (removed on success unless kept);
- ``model/`` (pretrain) or ``adapter/`` (finetune): the result, written atomically, with a
  ``fedem.json`` provenance record (config, data fingerprint, versions, metrics, hashes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import torch

from fedem import config as cfgio
from fedem.adapter import lora
from fedem.adapter.base import BaseInfo, shapes_sha256
from fedem.adapter.package import resolve_adapter_dir
from fedem.adapter.validate import validate_adapter
from fedem.clock import Clock
from fedem.data import build_dataset
from fedem.data.replay import base_mixture, with_replay
from fedem.data.spec import public_data
from fedem.errors import ConfigError, FedemError, ModelError
from fedem.io import atomic_dir, atomic_write_json, atomic_write_text, atomic_write_yaml, sha256_file
from fedem.model import build_model, count_parameters, load_model
from fedem.model.seshu import resolve_model_dir, weights_sha256, write_model
from fedem.names import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PROVENANCE
from fedem.provenance import AdapterRecord, ModelRecord, ParentRef, contributor_name, created
from fedem.train.config import FinetuneConfig, PretrainConfig
from fedem.train.engine import TrainResult, distributed_state, run_training


def _config_hash(cfg) -> str:
    data = cfgio.to_dict(cfg)
    data.pop("output", None)  # the same run may be resumed from a moved folder
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _is_main() -> bool:
    # Under `accelerate launch` / torchrun every rank runs the job; only rank 0 touches the output.
    return distributed_state().is_main_process


def _barrier() -> None:
    distributed_state().wait_for_everyone()


def _main_only(log):
    return log if _is_main() else (lambda *_a, **_k: None)


def _check_output(out: Path, resume: bool, result_name: str) -> None:
    """Refuse, before any work, to clobber a finished run or someone's folder (rank 0 decides)."""
    if not _is_main():
        return
    if (out / result_name / PROVENANCE).is_file():
        raise FedemError(f"{out}: already holds a finished run ({result_name}/); choose another --output")
    if out.exists() and any(out.iterdir()) and not resume:
        raise FedemError(
            f"{out}: not empty; pass --resume to continue the run there, or choose another --output"
        )


def _create_output(out: Path, cfg) -> None:
    """Create the run folder with its resolved config, once every input proved usable."""
    if _is_main():
        out.mkdir(parents=True, exist_ok=True)
        cfgio.dump(cfg, out / "config.yaml")
    _barrier()


def _check_heldout_nesting(model_dir: Path, data, field: str) -> None:
    """Refuse a held-out split that would score documents the starting model trained on.

    A document is held out when its text hash is below the job's fraction. Held-out sets are
    therefore nested: a job whose fraction is at most its starting model's holds out only
    documents that model never trained on. A larger fraction would leak (and flatter bits/byte).
    """
    prov_path = model_dir / PROVENANCE
    if not prov_path.is_file():
        return  # a model from elsewhere: nothing recorded to check against
    try:
        base_fraction = float(json.loads(prov_path.read_text())["config"]["data"]["heldout_fraction"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return
    if data.heldout_fraction > base_fraction:
        raise ConfigError(
            f"{field}: {data.heldout_fraction} is larger than the starting model's {base_fraction} "
            f"({prov_path}); documents it trained on would be scored as held-out. Use <= {base_fraction}"
        )


def _finish(out: Path, train_cfg) -> None:
    if not train_cfg.keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def pretrain(
    cfg: PretrainConfig, *, resume: bool = False, progress: bool = True, log=print, clock: Clock | None = None
) -> TrainResult:
    """Train Seshu from scratch, or continue ``cfg.model.init`` (continuous pretraining)."""
    out, log = Path(cfg.output), _main_only(log)
    _check_output(out, resume, "model")
    if cfg.model.init:
        model = load_model(resolve_model_dir(cfg.model.init))
        _check_heldout_nesting(resolve_model_dir(cfg.model.init), cfg.data, "data.heldout_fraction")
        arch = model.config.model_type
        if arch != cfg.model.arch:
            raise ModelError(
                f"model.init {cfg.model.init}: is {arch}, config says model.arch={cfg.model.arch}"
            )
    else:
        model = build_model(cfg.model.preset, cfg.model.arch, cfg.model.seed)
    data = build_dataset(cfg.data)
    _create_output(out, cfg)
    log(
        f"Seshu {cfg.model.preset}/{cfg.model.arch}: {count_parameters(model):,} parameters; "
        f"data {data.train_tokens:,} training tokens from {len(data.stats)} sources"
    )
    result = run_training(
        model, data, cfg.train, out, _config_hash(cfg), resume=resume, progress=progress, log=log
    )
    if _is_main():
        _save_pretrained(out, cfg, model, data, result, clock)
        log(f"saved {out / 'model'}")
    _barrier()
    log(result.summary())
    return result


def _save_pretrained(out: Path, cfg: PretrainConfig, model, data, result: TrainResult, clock) -> None:
    with atomic_dir(out / "model") as tmp:
        write_model(model, tmp)
        cfgio.dump(cfg, tmp / "config.yaml")
        record = ModelRecord(
            created=created(clock),
            init=str(cfg.model.init) if cfg.model.init else None,
            init_sha256=weights_sha256(cfg.model.init) if cfg.model.init else None,
            config=cfgio.to_dict(cfg),
            data=data.provenance(),
            metrics=result.__dict__,
            parameters=count_parameters(model),
            weights_sha256=weights_sha256(tmp),
        )
        atomic_write_json(tmp / PROVENANCE, record.to_dict())
    _finish(out, cfg.train)


def _public_config(cfg: FinetuneConfig) -> dict:
    """The config as published with an adapter: local paths cut to their last component.

    The run folder keeps the full config; a published adapter must not reveal a contributor's
    home directory or folder layout (and single-blind evaluation must not see it either).
    """
    data = cfgio.to_dict(cfg)
    for key in ("base", "adapter", "output"):
        if data.get(key):
            data[key] = Path(data[key]).name
    public_data(data["data"])
    return data


def _cut_base_path(path: Path) -> None:
    """PEFT writes the base's load path (often absolute: a contributor's home) into
    ``adapter_config.json``; a published adapter keeps only its last component."""
    cfg = json.loads(path.read_text())
    if cfg.get("base_model_name_or_path"):
        cfg["base_model_name_or_path"] = Path(cfg["base_model_name_or_path"]).name
    atomic_write_json(path, cfg)


def _model_card(cfg: FinetuneConfig, arch: str, result: TrainResult, langs: list[str]) -> str:
    return "\n".join(
        [
            "---",
            "library_name: peft",
            "tags: [fedem, seshu, lora, mamba]",
            f"base_model: {json.dumps(Path(cfg.base).name)}",
            f"language: {json.dumps(langs)}",
            "---",
            f"# {cfg.name}",
            "",
            f"A fedem relay LoRA adapter for Seshu ({arch}), targets {', '.join(cfg.lora.targets)}, rank {cfg.lora.r}.",
            f"Held-out bits/byte on the contributor's validation split: {result.bpb_before:.4f} -> {result.bpb_after:.4f}.",
            "Provenance (parent, base, data fingerprint, versions) is in `fedem.json`.",
            "",
        ]
    )


def finetune(
    cfg: FinetuneConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log=print,
    parent: ParentRef | None = None,
    clock: Clock | None = None,
    rebased_from: str | None = None,
) -> TrainResult:
    """LoRA-finetune ``cfg.base``: a fresh adapter, or continue ``cfg.adapter`` (a relay hop).

    ``parent`` carries hub facts about the adapter being continued (repo, revision), recorded
    in provenance. A continued adapter is loaded trainable and must change. ``rebased_from``
    is the base sha256 ``cfg.adapter`` was trained on when the relay carries it onto a newer
    checkpoint (:func:`fedem.publish.history.follow` decided that); its shapes are still
    checked against this base.
    """
    out, log = Path(cfg.output), _main_only(log)
    _check_output(out, resume, "adapter")
    base_dir = resolve_model_dir(cfg.base)
    model = load_model(base_dir)
    _check_heldout_nesting(base_dir, cfg.data, "data.heldout_fraction")
    arch = model.config.model_type
    # Described before any LoRA wraps the model: its layer shapes are the base's own.
    base = BaseInfo.from_model(model, sha256=weights_sha256(base_dir))
    if cfg.adapter:
        # Never load before validating; then continue with the adapter's own LoRA settings.
        adapter_dir = resolve_adapter_dir(cfg.adapter)
        validate_adapter(adapter_dir, dataclasses.replace(base, sha256=rebased_from or base.sha256))
        spec = lora.read_adapter_config(adapter_dir, arch)
        if spec != cfg.lora:
            log(
                f"continuing with the adapter's own LoRA settings (r={spec.r}, alpha={spec.alpha}), not the config's"
            )
        cfg = dataclasses.replace(cfg, lora=spec)
    lora.check_targets(cfg.lora.targets, arch)
    data = build_dataset(cfg.data)
    if cfg.data.replay > 0:  # keep the base's other languages: replay its own mixture beside ours
        data = with_replay(data, base_mixture(base_dir, cfg.data.replay_from))
        log(f"replaying {cfg.data.replay:.0%} of draws from the base's mixture (data.replay)")
    _create_output(out, cfg)
    if cfg.adapter:
        peft_model = lora.load_trainable(model, adapter_dir, arch)
        log(f"continuing adapter {cfg.adapter} (trainable)")
    else:
        # Seeded: a fresh adapter's A matrices are random, and must not depend on what ran before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            peft_model = lora.add_lora(model, cfg.lora, arch)
    before = lora.adapter_state(peft_model)
    n_train = count_parameters(peft_model, trainable_only=True)
    log(
        f"LoRA r={cfg.lora.r} on {', '.join(cfg.lora.targets)}: {n_train:,} trainable of {count_parameters(peft_model):,}"
    )
    result = run_training(
        peft_model, data, cfg.train, out, _config_hash(cfg), resume=resume, progress=progress, log=log
    )
    after = lora.adapter_state(peft_model)
    changed = sum(int(not before[k].equal(after[k])) for k in before)
    if changed == 0:
        raise FedemError(f"{out}: training changed no adapter weight; refusing to save an unchanged adapter")
    if _is_main():
        _save_adapter(out, cfg, peft_model, base, data, result, parent, changed, len(before), clock)
        log(f"saved {out / 'adapter'} ({changed}/{len(before)} tensors changed)")
    _barrier()
    log(result.summary())
    return result


def _save_adapter(
    out, cfg: FinetuneConfig, peft_model, base: BaseInfo, data, result, parent, changed, total, clock
) -> None:
    arch = base.arch
    langs = sorted({s.name.split(":", 1)[1] for s in data.stats if s.name.startswith("embedded:")})
    with atomic_dir(out / "adapter") as tmp:
        peft_model.save_pretrained(tmp, safe_serialization=True)
        _cut_base_path(tmp / ADAPTER_CONFIG)
        public = _public_config(cfg)
        atomic_write_yaml(tmp / "config.yaml", public)
        atomic_write_text(tmp / "README.md", _model_card(cfg, arch, result, langs))
        record = AdapterRecord(
            adapter=cfg.name,
            parent=parent,
            base={
                "path": public["base"],
                "arch": arch,
                "sha256": base.sha256,
                "lora_shapes_sha256": shapes_sha256(base.lora_shapes(cfg.lora.targets, cfg.lora.r)),
            },
            contributor=contributor_name(cfg.contributor),
            created=created(clock),
            lora=cfgio.to_dict(cfg.lora),
            config=public,
            data=data.provenance(),
            metrics={**result.__dict__, "tensors_changed": changed, "tensors": total},
            weights_sha256=sha256_file(tmp / ADAPTER_WEIGHTS),
        )
        atomic_write_json(tmp / PROVENANCE, record.to_dict())
    _finish(out, cfg.train)
