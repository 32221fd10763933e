"""The relay: pull an adapter from a hub, validate it, train it one hop further, push it back.

One adapter is one hub repo; each hop is one revision whose parent is the revision it was
trained from. The hub's compare-and-swap on the parent makes concurrent hops safe: of two
contributors who trained on the same head, the first push wins and the second gets a
:class:`~fedem.errors.ConflictError` telling them who moved the head and when, and nothing of
theirs is lost (their folder is never touched; push publishes from a validated copy).

Every adapter is validated (:func:`fedem.adapter.validate_adapter`) before it is loaded: on pull,
before training, after training and again on push. A hop never silently starts a fresh adapter:
that takes ``new=True`` (``--new``) and an empty repo. Lineage and tags live in
:mod:`fedem.adapter.lineage` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fedem.adapter import package as pkg
from fedem.adapter.base import BaseInfo
from fedem.adapter.lineage import LineageEntry, format_lineage, lineage, merged_tag, tag_revision
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.adapter.validate import AdapterReport, check_files, validate_adapter
from fedem.clock import Clock
from fedem.errors import AdapterRejected, ConflictError, FedemError, HubError
from fedem.hub import Hub, Revision, open_hub
from fedem.names import MAX_MESSAGE, check_free_text, is_revision_id
from fedem.provenance import ParentRef

# ``--base hub:seshu`` trains on the newest checkpoint of repo ``seshu`` on the relay's hub.
CHECKPOINT_PREFIX = "hub:"

if TYPE_CHECKING:
    from fedem.train.engine import TrainResult

__all__ = [
    "LineageEntry",
    "Pulled",
    "RelayHop",
    "format_lineage",
    "lineage",
    "merged_tag",
    "pull_adapter",
    "push_adapter",
    "relay_finetune",
    "tag_revision",
]


@dataclasses.dataclass(frozen=True)
class Pulled:
    """A validated adapter revision on local disk."""

    folder: Path
    revision: Revision
    report: AdapterReport


@dataclasses.dataclass(frozen=True)
class RelayHop:
    """One relay step: what it continued (None for a fresh adapter) and what it produced."""

    adapter_dir: Path
    parent: Revision | None
    report: AdapterReport
    result: TrainResult


def _hub(hub: str | Hub) -> Hub:
    return open_hub(hub) if isinstance(hub, str) else hub


def default_cache_dir() -> Path:
    """Where relay hops keep pulled parents: ``$FEDEM_CACHE``, else ``~/.cache/fedem``."""
    return Path(os.environ.get("FEDEM_CACHE") or Path.home() / ".cache" / "fedem")


def _short(rev_id: str | None) -> str:
    return rev_id[:12] if rev_id else "(none)"


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def author_label(rev: Revision) -> str:
    """A revision's author for messages; the hub may attribute nobody."""
    return rev.author or "(author unknown to the hub)"


def _checked(rev: Revision) -> Revision:
    """``rev`` if its id is a plain hex revision id. Ids become folder names (the pull cache, the
    default pull folder), so an id with ``/`` or ``..`` from a tampered hub must never get that far;
    the backends check this too, this check does not rely on them."""
    if not is_revision_id(rev.id):
        raise HubError(
            f"hub returned {rev.id[:80]!r} for {rev.repo!r}, which is not a revision id (hex digest)"
        )
    return rev


# -- pull -------------------------------------------------------------------------------------------
def pull_adapter(
    hub: str | Hub,
    name: str,
    revision: str | None = None,
    *,
    output: str | Path | None = None,
    base: BaseInfo | str | Path | None = None,
    policy: AdapterPolicy = DEFAULT_POLICY,
) -> Pulled:
    """Download revision ``revision`` (None: head) of adapter ``name`` into ``output`` and validate it.

    The files land in a hidden sibling first and are moved to ``output`` only once valid, so a
    rejected adapter never appears on disk. ``output`` defaults to ``adapters/NAME-REV12``.
    """
    validate_adapter_name(name)
    hub = _hub(hub)
    rev = _checked(hub.resolve(name, revision))
    dest = Path(output) if output else Path("adapters") / f"{name}-{rev.id[:12]}"
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HubError(f"cannot pull into {dest}: it exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.pull-{uuid.uuid4().hex[:8]}"
    try:
        # The policy's caps, so an oversized revision is refused before it is fetched.
        hub.download(name, rev.id, staging, max_files=policy.max_files, max_bytes=policy.max_bytes)
        report = _validate_revision(staging, rev, base, policy)
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Pulled(dest, rev, dataclasses.replace(report, folder=dest))


def _validate_revision(folder: Path, rev: Revision, base, policy: AdapterPolicy) -> AdapterReport:
    """Validate a downloaded revision, and check its recorded parent is the hub's parent."""
    report = validate_adapter(folder, base, policy, name=rev.repo.rsplit("/", 1)[-1])
    if report.parent_revision != rev.parent:
        raise AdapterRejected(
            f"revision {_short(rev.id)} of {rev.repo!r}: fedem.json records parent "
            f"{_short(report.parent_revision)} but the hub's parent is {_short(rev.parent)}"
        )
    return report


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


def _as_recorded(base: BaseInfo, recorded: dict) -> BaseInfo:
    return dataclasses.replace(base, sha256=recorded["sha256"], revision=recorded.get("revision"))


def _pull_base(hub: Hub, ref: str, cache_dir, log):
    """``hub:REPO[@REV]`` (REPO defaults to the checkpoint repo, REV to its newest checkpoint), pulled and checked."""
    from fedem.publish import DEFAULT_REPO, pull_checkpoint

    repo, _, rev = ref[len(CHECKPOINT_PREFIX) :].partition("@")
    ckpt = pull_checkpoint(
        hub,
        repo or DEFAULT_REPO,
        rev or None,
        cache_dir=Path(cache_dir) / "checkpoints" if cache_dir else None,
    )
    log(f"base: checkpoint {ckpt.repo}@{_short(ckpt.revision.id)} ({ckpt.tag or 'untagged'}) from {hub.url}")
    return ckpt


def _follow(hub: Hub, name: str, parent_id: str, theirs: dict, base: BaseInfo):
    """None when the parent was trained on this base; else the one allowed move onto it.

    The parent's base must be an older checkpoint of the same chain on this hub (its record's
    weights are the ones the parent names), and this base must be a checkpoint of that chain.
    """
    from fedem.publish.history import follow, read_history, read_hub_record

    recorded = theirs.get("base") if isinstance(theirs.get("base"), dict) else {}
    if recorded.get("sha256") == base.sha256:
        return None
    where = f"revision {_short(parent_id)} of {name!r}"
    if base.repo is None or base.revision is None:
        raise AdapterRejected(
            f"different base: {where} was trained on base {str(recorded.get('sha256'))[:12]}, this base is "
            f"{str(base.sha256)[:12]}; to follow a newer checkpoint pass --base {CHECKPOINT_PREFIX}REPO"
        )
    if recorded.get("repo") != base.repo or not is_revision_id(recorded.get("revision")):
        raise AdapterRejected(
            f"different base: {where} was not trained on a checkpoint of {base.repo!r} on {hub.url}, "
            "so it cannot follow one"
        )
    history = read_history(hub, base.repo, hub.resolve(base.repo, base.revision))
    moved = follow(history, base.repo, parent_id, recorded["revision"])
    source = hub.resolve(base.repo, recorded["revision"])
    if read_hub_record(hub, base.repo, source).get("weights_sha256") != recorded.get("sha256"):
        raise AdapterRejected(
            f"different base: {where} records base sha256 {str(recorded.get('sha256'))[:12]}, which is not "
            f"the weights of {base.repo}@{_short(source.id)}"
        )
    return moved


def _head_if_exists(hub: Hub, name: str) -> Revision | None:
    """The head of ``name``, or None when the repo is empty or absent (other hub errors propagate)."""
    try:
        return hub.head(name)
    except HubError:
        if name in hub.list_repos():
            raise
        return None


def _cached_pull(
    hub: Hub, name: str, rev: Revision, base: BaseInfo, policy: AdapterPolicy, cache_dir
) -> Pulled:
    """Pull ``rev`` into the cache (revisions are immutable, so one copy per id), validated each time."""
    root = (Path(cache_dir) if cache_dir else default_cache_dir()) / "adapters"
    hub_key = hashlib.sha256(hub.url.encode()).hexdigest()[:16]
    dest = root / hub_key / name / _checked(rev).id
    # Belt and braces before the rmtree below: whatever a hub returns, only the cache is touched.
    if not dest.resolve().is_relative_to(root.resolve() / hub_key / name):
        raise HubError(f"revision {rev.id[:80]!r} of {name!r} on {hub.url} points outside the cache {root}")
    if (dest / pkg.PROVENANCE).is_file():
        return Pulled(dest, rev, _validate_revision(dest, rev, base, policy))
    shutil.rmtree(dest, ignore_errors=True)  # a partial copy never validates; start again
    return pull_adapter(hub, name, rev.id, output=dest, base=base, policy=policy)


# -- push -------------------------------------------------------------------------------------------
def push_adapter(
    hub: str | Hub,
    name: str,
    folder: str | Path,
    *,
    message: str | None = None,
    parent: str | None = None,
    author: str | None = None,
    policy: AdapterPolicy = DEFAULT_POLICY,
) -> Revision:
    """Validate ``folder`` and publish it as the next revision of ``name``; return the revision.

    The parent is ``parent`` (a revision id, prefix or tag) or else the one recorded in
    ``fedem.json`` (None: a fresh adapter, only onto an empty repo). If the head moved since,
    ConflictError names the new head, its author and time; ``folder`` is never modified.
    """
    validate_adapter_name(name)
    hub = _hub(hub)
    folder = pkg.resolve_adapter_dir(folder)
    if not folder.is_dir():
        raise AdapterRejected(f"{folder}: adapter folder not found")
    check_files(folder, policy)  # before any copy: a FIFO or a device must never be opened
    with tempfile.TemporaryDirectory(prefix="fedem-push-") as tmp:
        # Publish exactly the bytes that were validated: a copy nobody else writes to.
        staged = Path(tmp) / name
        shutil.copytree(folder, staged, symlinks=True)
        report = validate_adapter(staged, None, policy, name=name)
        meta = json.loads((staged / pkg.PROVENANCE).read_text())
        recorded_repo = pkg.get_path(meta, "parent.repo")
        if recorded_repo not in (None, name):
            raise AdapterRejected(f"{folder}: continues adapter {recorded_repo!r}, not {name!r}")
        parent_id = _push_parent(hub, name, folder, report.parent_revision, parent)
        if parent_id is None:
            hub.create_repo(name, exist_ok=True)
        else:
            _check_continues(hub, name, parent_id, meta, staged)
            if report.parent_revision is None:  # an explicit --parent for a fresh adapter: record it
                p = hub.resolve(name, parent_id)
                parent_ref = ParentRef.of(name, p.id, p.author, p.time)
                pkg.restamp(
                    staged, {"parent": parent_ref.to_dict()}, card_base=pkg.get_path(meta, "base.repo")
                )
        author = check_free_text(
            author or os.environ.get("FEDEM_AUTHOR") or report.contributor, "author", FedemError
        )
        message = check_free_text(
            message
            or (
                f"{report.contributor}: {meta['metrics']['steps']} steps, held-out bits/byte "
                f"{report.bpb_before:.4f} -> {report.bpb_after:.4f}"
            ),
            "message",
            FedemError,
            max_len=MAX_MESSAGE,
            multiline=True,
        )
        try:
            return hub.publish(name, staged, message=message, parent=parent_id, author=author)
        except ConflictError:
            raise ConflictError(
                _conflict_message(hub, name, parent_id, folder, report.weights_sha256)
            ) from None


def _push_parent(hub: Hub, name: str, folder: Path, recorded: str | None, explicit: str | None) -> str | None:
    if recorded is not None:
        try:
            hub.resolve(name, recorded)
        except HubError:
            raise HubError(
                f"{folder} was trained from revision {_short(recorded)} of {name!r}, which is not on {hub.url}"
            ) from None
    if explicit is None:
        return recorded
    explicit_id = hub.resolve(name, explicit).id
    if recorded is not None and recorded != explicit_id:
        raise FedemError(
            f"{folder} was trained from revision {_short(recorded)} (fedem.json), not --parent "
            f"{_short(explicit_id)}; push it without --parent"
        )
    return explicit_id


def _check_continues(hub: Hub, name: str, parent_id: str, meta: dict, staged: Path) -> None:
    """A hop must keep its parent's base and LoRA shape; checked from the parent's small files."""
    try:
        theirs = pkg.parse_json_object(hub.read_file(name, pkg.PROVENANCE, parent_id), pkg.PROVENANCE)
        their_cfg = pkg.parse_json_object(hub.read_file(name, pkg.CONFIG, parent_id), pkg.CONFIG)
    except AdapterRejected:
        return  # an unreadable parent record cannot vouch for anything; the CAS still protects the chain
    moved = "follow" in meta
    if moved:
        _check_follow(hub, name, parent_id, theirs, meta)
    for field in ("base.arch", "base.sha256", "base.lora_shapes_sha256"):
        if field == "base.sha256" and moved:
            continue  # checked by _check_follow: one of the two allowed moves to a newer checkpoint
        if field == "base.lora_shapes_sha256" and None in (
            pkg.get_path(theirs, field),
            pkg.get_path(meta, field),
        ):
            continue  # recorded since 0.2; a 0.1.0 parent has none to compare
        if pkg.get_path(theirs, field) != pkg.get_path(meta, field):
            raise AdapterRejected(
                f"different base: revision {_short(parent_id)} of {name!r} has {field} "
                f"{str(pkg.get_path(theirs, field))[:12]}, this adapter {str(pkg.get_path(meta, field))[:12]}"
            )
    mine = json.loads((staged / pkg.CONFIG).read_text())
    for field in ("r", "target_modules"):
        if their_cfg.get(field) != mine.get(field):
            raise AdapterRejected(
                f"{pkg.CONFIG}: {field}={mine.get(field)!r} differs from revision {_short(parent_id)} "
                f"({their_cfg.get(field)!r}); a relay hop keeps its parent's LoRA shape"
            )


def _check_follow(hub: Hub, name: str, parent_id: str, theirs: dict, meta: dict) -> None:
    """A hop that changed base must record exactly the move the hub's checkpoint records allow."""
    from fedem.publish.history import follow, follow_from_record, read_history

    recorded = follow_from_record(meta.get("follow"), pkg.PROVENANCE)
    where = f"{pkg.PROVENANCE}: follow"
    if (
        pkg.get_path(meta, "base.repo") != recorded.repo
        or pkg.get_path(meta, "base.revision") != recorded.onto
    ):
        raise AdapterRejected(
            f"{where}: names {recorded.repo}@{_short(recorded.onto)}, not this adapter's base"
        )
    if (
        pkg.get_path(theirs, "base.repo") != recorded.repo
        or pkg.get_path(theirs, "base.revision") != recorded.source
    ):
        raise AdapterRejected(
            f"{where}: starts from {recorded.repo}@{_short(recorded.source)}, but revision "
            f"{_short(parent_id)} of {name!r} was trained on {str(pkg.get_path(theirs, 'base.revision'))[:12]}"
        )
    try:
        history = read_history(hub, recorded.repo, hub.resolve(recorded.repo, recorded.onto))
        allowed = follow(history, recorded.repo, parent_id, recorded.source)
    except HubError as err:
        raise AdapterRejected(f"{where}: cannot be checked on {hub.url} ({err})") from None
    if allowed != recorded:
        raise AdapterRejected(
            f"{where}: records a {recorded.kind} but the checkpoint records allow only: {allowed.describe()}"
        )


def _conflict_message(hub: Hub, name: str, parent_id: str | None, folder: Path, weights_sha256: str) -> str:
    try:
        head = hub.head(name)
    except FedemError:
        head = None
    if head is None:
        moved = "its head moved"
    else:
        desc = f"{_short(head.id)} by {author_label(head)} at {_when(head.time)}"
        moved = f"its head is now {desc}"
        try:
            theirs = pkg.parse_json_object(hub.read_file(name, pkg.PROVENANCE, head.id), pkg.PROVENANCE)
            if theirs.get("weights_sha256") == weights_sha256:
                return f"adapter {name!r} on {hub.url}: {folder} is already published as its head ({desc})"
        except FedemError:
            pass  # an unreadable head record just means it is not ours
    return (
        f"adapter {name!r} on {hub.url} moved on: {moved}, not your parent {_short(parent_id)}; "
        f"nothing was published and {folder} is untouched; pull the new head "
        f"(fedem finetune --hub {hub.url} --adapter {name} ...) and train again, then push"
    )
