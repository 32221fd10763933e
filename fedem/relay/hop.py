"""One relay hop: pull a revision (or start fresh), train it one hop further on the current base."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from fedem.adapter import package as pkg
from fedem.adapter.base import BaseInfo
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.adapter.validate import AdapterReport, validate_adapter
from fedem.clock import Clock
from fedem.errors import AdapterRejected, FedemError, HubError
from fedem.hub import Hub, Revision
from fedem.provenance import ParentRef
from fedem.relay.follow import CHECKPOINT_PREFIX, _as_recorded, _follow, _pull_base
from fedem.relay.pull import _cached_pull, _head_if_exists, _hub, _short, _when, author_label

if TYPE_CHECKING:
    from fedem.train.engine import TrainResult


@dataclasses.dataclass(frozen=True)
class RelayHop:
    """One relay step: what it continued (None for a fresh adapter) and what it produced."""

    adapter_dir: Path
    parent: Revision | None
    report: AdapterReport
    result: TrainResult


# -- one relay hop ------------------------------------------------------------------------------------
def relay_finetune(
    cfg,
    hub: str | Hub,
    name: str,
    revision: str | None = None,
    *,
    new: bool = False,
    base_repo: str | None = None,
    base_revision: str | None = None,
    cache_dir: str | Path | None = None,
    policy: AdapterPolicy = DEFAULT_POLICY,
    resume: bool = False,
    progress: bool = True,
    log=print,
    clock: Clock | None = None,
) -> RelayHop:
    """Train adapter ``name`` one hop: pull ``revision`` (None: head), validate it, continue it.

    ``cfg`` is a :class:`~fedem.train.config.FinetuneConfig`; its ``adapter``, ``name`` and
    ``lora`` are replaced by the pulled adapter's. ``new=True`` starts a fresh adapter and
    requires the repo to be empty or absent; without it a missing or empty repo is an error.
    ``base_repo``/``base_revision`` name the base on a hub; when omitted they are inherited
    from the parent if it was trained on the same base weights. The result is in
    ``cfg.output/adapter``, validated, with ``fedem.json`` recording the parent revision.
    """
    from fedem.adapter import lora
    from fedem.model.seshu import resolve_model_dir
    from fedem.train.jobs import finetune

    theirs: dict = {}
    validate_adapter_name(name)
    hub = _hub(hub)
    if str(cfg.base).startswith(CHECKPOINT_PREFIX):  # hub:REPO[@REV]: a checkpoint on this hub
        ckpt = _pull_base(hub, str(cfg.base), cache_dir, log)
        cfg = dataclasses.replace(cfg, base=str(ckpt.folder))
        base_repo, base_revision = ckpt.repo, ckpt.revision.id
    base_dir = resolve_model_dir(cfg.base)
    base = BaseInfo.from_dir(base_dir, repo=base_repo, revision=base_revision)
    parent_rev, parent_ref, parent_meta, moved = None, None, {}, None
    if new:
        if revision is not None:
            raise FedemError("--new starts a fresh adapter; it cannot be combined with --revision")
        head = _head_if_exists(hub, name)
        if head is not None:
            raise FedemError(
                f"adapter {name!r} already exists on {hub.url} (head {_short(head.id)} by {author_label(head)}); "
                "drop --new to continue it"
            )
        if cfg.lora.r > policy.max_rank:  # refuse now, not after training an adapter nobody can push
            raise AdapterRejected(f"lora.r={cfg.lora.r} exceeds the policy maximum of {policy.max_rank}")
        cfg = dataclasses.replace(cfg, adapter=None, name=name)
        log(f"starting a fresh adapter {name!r} (first hop)")
    else:
        head = _head_if_exists(hub, name)
        if head is None:
            raise HubError(
                f"no revisions of adapter {name!r} on {hub.url}; pass --new to start a fresh adapter"
            )
        parent_rev = hub.resolve(name, revision)
        if head.id != parent_rev.id:
            log(f"note: {_short(parent_rev.id)} is not the head ({_short(head.id)}); pushing will conflict")
        theirs = pkg.parse_json_object(hub.read_file(name, pkg.PROVENANCE, parent_rev.id), pkg.PROVENANCE)
        moved = _follow(hub, name, parent_rev.id, theirs, base)
        # A follow is checked against the hub's records (_follow); the parent itself is then
        # validated as what it is: an adapter of the older checkpoint, with this base's shapes.
        pull_base = base if moved is None else _as_recorded(base, theirs["base"])
        pulled = _cached_pull(hub, name, parent_rev, pull_base, policy, cache_dir)
        parent_meta = json.loads((pulled.folder / pkg.PROVENANCE).read_text())
        spec = lora.read_adapter_config(pulled.folder, base.arch)
        if spec != cfg.lora:
            log(f"continuing with the adapter's own LoRA settings (r={spec.r}, alpha={spec.alpha})")
        start = None if moved is not None and moved.kind == "reset" else str(pulled.folder)
        cfg = dataclasses.replace(cfg, adapter=start, name=name, lora=spec)
        parent_ref = ParentRef.of(name, parent_rev.id, parent_rev.author, parent_rev.time)
        log(
            f"continuing {name}@{_short(parent_rev.id)} by {author_label(parent_rev)} ({_when(parent_rev.time)})"
        )
        if moved is not None:
            log(f"the base moved on: {moved.describe()}")
    rebased_from = theirs["base"]["sha256"] if moved is not None and moved.kind == "rebased" else None
    result = finetune(
        cfg,
        resume=resume,
        progress=progress,
        log=log,
        parent=parent_ref,
        clock=clock,
        rebased_from=rebased_from,
    )
    out = Path(cfg.output) / "adapter"
    # Hub facts jobs.finetune cannot know: the base's hub name, inherited along the chain.
    inherited = pkg.get_path(parent_meta, "base", {}) if parent_meta else {}
    same_base = inherited.get("sha256") == base.sha256
    repo = base_repo or (inherited.get("repo") if same_base else None)
    rev = base_revision or (inherited.get("revision") if same_base else None)
    updates = {"base.repo": repo, "base.revision": rev}
    if moved is not None:
        updates["follow"] = moved.to_dict()
    pkg.restamp(out, updates, card_base=repo)
    report = validate_adapter(out, base, policy, name=name)
    return RelayHop(out, parent_rev, report, result)
