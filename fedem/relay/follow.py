"""Following a newer checkpoint: ``--base hub:REPO[@REV]``, and the one move a hop may make to it.

The hub's checkpoint records decide (:func:`fedem.publish.history.follow`): a revision merged
on the way resets to a zero delta, any other is rebased (continues its weights). A hop records
the move in ``fedem.json`` (``follow``); push accepts a change of base only with that record,
and only the move the records allow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fedem.adapter import package as pkg
from fedem.adapter.base import BaseInfo
from fedem.errors import AdapterRejected, HubError
from fedem.hub import Hub
from fedem.names import is_revision_id
from fedem.relay.pull import _short

# ``--base hub:seshu`` trains on the newest checkpoint of repo ``seshu`` on the relay's hub.
CHECKPOINT_PREFIX = "hub:"


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
