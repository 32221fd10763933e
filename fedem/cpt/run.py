"""``fedem cpt``: continue the newest checkpoint on new data, and publish it only if it is better.

1. find the newest checkpoint of ``repo`` (the head) and the data cursor in force there;
2. plan: per source, the blocks not yet consumed, and the steps of the budget they fill;
   nothing new means nothing trained and nothing published (``--dry-run`` stops here too);
3. pull and check the checkpoint; score the parent per language on held-out blocks;
4. train through the engine's named steps (:mod:`fedem.train.engine`), with the cursor's draws;
5. score the trained model; write ``output/model`` (weights, config, ``fedem.json`` with the
   advanced cursor and the parent's revision, card);
6. publish it onto the parent (compare-and-swap, :func:`fedem.publish.publish_checkpoint`,
   ``base_model_relation: finetune``) only if :class:`~fedem.cpt.score.Verdict` says so;
   otherwise report the numbers and the language that got worse, and publish nothing.

Under ``accelerate launch`` every rank trains; rank 0 alone pulls first, writes and publishes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from fedem import config as cfgio
from fedem.clock import Clock
from fedem.cpt.config import CptConfig, language_of
from fedem.cpt.cursor import Plan, advance, check_compatible, draw, find_cursor, format_plan, plan
from fedem.cpt.score import Verdict, bits_per_byte_by_language, heldout_by_language
from fedem.data import build_dataset
from fedem.data.spec import EMBEDDED_LANGS, public_data
from fedem.errors import ConfigError, FedemError
from fedem.hub import Hub, Revision, default_hub_url, open_hub
from fedem.io import atomic_dir, atomic_write_json, atomic_write_text, atomic_write_yaml
from fedem.model import count_parameters, load_model, weights_sha256
from fedem.model.seshu import write_model
from fedem.names import CARD, PROVENANCE, RUN_CONFIG
from fedem.provenance import ModelRecord, ParentRef, created, get_path
from fedem.publish import (
    Published,
    hub_repo_id,
    latest_checkpoint,
    model_card,
    publish_checkpoint,
    pull_checkpoint,
)
from fedem.publish.tags import checkpoint_tags, tag_checkpoint
from fedem.train.engine import TrainResult, distributed_state, run_training


@dataclasses.dataclass(frozen=True)
class CptOutcome:
    """What a CPT run did. ``published`` is None when nothing was published; ``reason`` says why."""

    parent: Revision
    plan: Plan
    reason: str
    verdict: Verdict | None = None
    result: TrainResult | None = None
    folder: Path | None = None
    published: Published | None = None


def _short(rev_id: str) -> str:
    return rev_id[:12]


def public_config(cfg: CptConfig) -> dict:
    """The config as recorded in a published checkpoint: no hub URL, output or local paths."""
    data = cfgio.to_dict(cfg)
    data.pop("hub", None)
    data.pop("output", None)
    public_data(data["data"])
    public_data(data["eval"])  # its sources are SourceSpecs too
    return data


def _check_output(out: Path, resume: bool) -> None:
    if (out / "model" / PROVENANCE).is_file():
        raise FedemError(f"{out}: already holds a finished CPT run (model/); choose another output")
    if out.exists() and any(out.iterdir()) and not resume:
        raise FedemError(
            f"{out}: not empty; pass --resume to continue the run there, or choose another output"
        )


def _check_nesting(cfg: CptConfig, parent_record: ModelRecord, where: str) -> None:
    fraction = get_path(parent_record.config, "data.heldout_fraction")
    if isinstance(fraction, (int, float)) and cfg.data.heldout_fraction > fraction:
        raise ConfigError(
            f"data.heldout_fraction: {cfg.data.heldout_fraction} is larger than {where}'s {fraction}; "
            f"documents it trained on would be scored as held-out. Use <= {fraction}"
        )


def run_cpt(
    cfg: CptConfig,
    hub: str | Hub | None = None,
    *,
    dry_run: bool = False,
    resume: bool = False,
    progress: bool = True,
    log=print,
    clock: Clock | None = None,
    cache_dir: str | Path | None = None,
) -> CptOutcome:
    """Run continuous pretraining as configured; see the module docstring for the steps."""
    state = distributed_state()
    main = state.is_main_process
    log = log if main else (lambda *_a, **_k: None)
    hub = hub if isinstance(hub, Hub) else open_hub(hub or cfg.hub or default_hub_url())
    out = Path(cfg.output)
    if not dry_run and main:
        _check_output(out, resume)

    # Everything that can refuse the job is checked before anything is printed or written.
    head = latest_checkpoint(hub, cfg.repo)
    cursor, holder = find_cursor(hub, cfg.repo, head)
    where = f"{cfg.repo}@{_short(holder.id)}"
    check_compatible(cursor, cfg.data)
    data = build_dataset(cfg.data)
    spec = cfg.train
    draws_per_step = spec.batch_size * spec.grad_accum * state.num_processes
    the_plan = plan(cursor, cfg.data, data, spec.steps, draws_per_step, where)
    tags = ", ".join(checkpoint_tags(cfg.repo, head)) or "untagged"
    log(f"checkpoint {cfg.repo}@{_short(head.id)} ({tags}) on {hub.url}")
    root = " (a root: every block it pretrained on counts as consumed)" if holder.parent is None else ""
    log(f"data cursor from {where}{root}")
    if the_plan.steps == 0:
        reason = (
            f"no new data: {the_plan.remaining} unconsumed training blocks, fewer than one step's "
            f"{draws_per_step}; nothing trained, nothing published"
        )
        log(format_plan(the_plan))
        log(reason)
        return CptOutcome(head, the_plan, reason)
    order, the_plan = draw(the_plan, cfg.data, spec.seed)
    log(format_plan(the_plan))
    capped = (
        f" (of a budget of {spec.steps}: that is all the new data)" if the_plan.steps < spec.steps else ""
    )
    log(
        f"training {the_plan.steps} steps{capped} on {len(order):,} new blocks of {cfg.data.block_size} bytes"
    )
    if dry_run:
        reason = (
            f"dry run: would train {the_plan.steps} steps from {cfg.repo}@{_short(head.id)} and publish "
            f"onto it if the mean held-out bits/byte over {len(cfg.eval.sources)} languages improves by more "
            f"than {cfg.eval.min_improvement} and none gets worse by more than {cfg.eval.delta}; nothing written"
        )
        log(reason)
        return CptOutcome(head, the_plan, reason)

    if main and not checkpoint_tags(cfg.repo, head):  # a crash between an earlier publish and its tag
        log(f"tagged the untagged head: {tag_checkpoint(hub, cfg.repo, head.id, clock=clock)}")
    with state.main_process_first():  # rank 0 downloads; the others find it in the cache
        parent = pull_checkpoint(hub, cfg.repo, head.id, cache_dir=cache_dir)
    _check_nesting(cfg, parent.record, f"{cfg.repo}@{_short(head.id)}")
    model = load_model(parent.folder).to(state.device)  # score the parent where it will train
    heldout = heldout_by_language(cfg.eval, cfg.data)
    before = bits_per_byte_by_language(model, heldout, cfg.eval.batch_size)

    if main:
        out.mkdir(parents=True, exist_ok=True)
        cfgio.dump(cfg, out / RUN_CONFIG)
    state.wait_for_everyone()
    config_hash = hashlib.sha256(
        json.dumps(
            {"config": public_config(cfg), "parent": head.id, "starts": [s.start for s in the_plan.sources]},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    run_spec = dataclasses.replace(
        spec, steps=the_plan.steps, warmup_steps=min(spec.warmup_steps, the_plan.steps)
    )
    result, trained = _train(
        model, data, run_spec, out, config_hash, order, resume=resume, progress=progress, log=log
    )
    after = bits_per_byte_by_language(trained, heldout, cfg.eval.batch_size)
    verdict = Verdict(before, after, cfg.eval.delta, cfg.eval.min_improvement)
    log(verdict.table())
    folder = out / "model"
    if main:
        _save(
            folder,
            cfg,
            hub,
            head,
            parent.record.weights_sha256,
            trained,
            data,
            result,
            verdict,
            advance(cursor, the_plan, data),
            clock,
        )
        log(f"saved {folder}")
    state.wait_for_everyone()
    if not verdict.ok:
        log(verdict.reason())
        return CptOutcome(head, the_plan, verdict.reason(), verdict, result, folder)
    published = None
    if main:
        message = (
            f"cpt: {the_plan.steps} steps on {len(order):,} new blocks; mean held-out bits/byte "
            f"{verdict.overall_before:.4f} -> {verdict.overall_after:.4f}"
        )
        published = publish_checkpoint(hub, cfg.repo, folder, message=message, author=cfg.author, clock=clock)
        log(f"published {cfg.repo}@{published.revision.id} as {published.tag}")
    state.wait_for_everyone()
    return CptOutcome(head, the_plan, verdict.reason(), verdict, result, folder, published)


def _train(model, data, spec, workdir: Path, config_hash: str, order, *, resume, progress, log):
    """The engine's loop, with the cursor's draws (each new block once) in place of the data's order."""
    result = run_training(
        model, data, spec, workdir, config_hash, resume=resume, progress=progress, log=log, order=order
    )
    return result, model


def _save(folder, cfg, hub, head, parent_sha, model, data, result, verdict, cursor, clock) -> None:
    """Write the trained checkpoint folder (atomically): weights, config, record, card."""
    repo_id = hub_repo_id(hub, cfg.repo)
    langs = [language_of(s) for s in cfg.eval.sources if language_of(s) in EMBEDDED_LANGS]
    with atomic_dir(folder) as tmp:
        write_model(model, tmp)
        atomic_write_yaml(tmp / RUN_CONFIG, public_config(cfg))
        record = ModelRecord(
            created=created(clock),
            init=f"{cfg.repo}@{head.id}",
            init_sha256=parent_sha,
            config=public_config(cfg),
            data=data.provenance(),
            metrics={**result.__dict__, "heldout_by_language": verdict.to_dict()},
            parameters=count_parameters(model),
            weights_sha256=weights_sha256(tmp),
            parent=ParentRef.of(cfg.repo, head.id, head.author, head.time),
            relation="finetune",
            cursor=cursor,
        )
        atomic_write_json(tmp / PROVENANCE, record.to_dict())
        card = model_card(
            model_name=repo_id,
            relation="finetune",
            base_model=repo_id,
            parent_revision=head.id,
            bpb=verdict.after,
            bpb_parent=verdict.before,
            languages=langs,
            summary=f"Continuous pretraining: {result.steps} steps, {result.tokens:,} tokens of data its chain had not seen.",
            data_fingerprints={"continued-pretraining data": data.fingerprint},
        )
        atomic_write_text(tmp / CARD, card)
    if not cfg.train.keep_checkpoints:
        shutil.rmtree(folder.parent / "checkpoints", ignore_errors=True)
